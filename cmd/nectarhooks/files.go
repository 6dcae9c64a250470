package main

import (
	"fmt"
	"io"
	"os"

	"github.com/nectarhooks/nectarhooks"
)

// maxFileBytes caps what the commands read from a file: a receiver with
// the default settings refuses a larger body (413), and a payload or a
// capture is a few KiB. The cap also stops "send /dev/zero", or a FIFO
// nobody closes, from reading forever or filling memory.
const maxFileBytes = nectarhooks.DefaultMaxBodyBytes

// readFileCapped reads the file at path, up to limit bytes; a longer file
// is an error rather than silently cut, since a cut body would not be the
// payload it claims to be.
func readFileCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes, the most a receiver reads by default (nectarhooks.DefaultMaxBodyBytes)", path, limit)
	}
	return data, nil
}
