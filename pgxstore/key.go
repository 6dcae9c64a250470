package pgxstore

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// maxPlainID is the longest id kept in the table as it is. PostgreSQL
// cannot index a value of more than about 2.7 kB in a B-tree, and a
// svix-id header can be longer than that, however unlikely from Svix
// (its ids are about 30 bytes).
const maxPlainID = 1024

// hashedPrefix starts the form of ids that are not kept as they are. No
// id kept as it is starts with it, since those have no control bytes, so
// the two forms never meet.
const hashedPrefix = "\x01"

// key returns id as the table's id column holds it: the id itself when
// PostgreSQL's text can hold and index it, which is the case of every id
// Svix sends, so that the table reads plainly; otherwise (longer than
// maxPlainID bytes, not UTF-8, or with a control byte such as NUL, which
// text cannot hold) hashedPrefix and the hex SHA-256 of its bytes. Ids
// stay compared byte for byte either way.
func key(id string) string {
	if len(id) <= maxPlainID && plain(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hashedPrefix + hex.EncodeToString(sum[:])
}

// plain reports whether id is UTF-8 without control bytes.
func plain(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return false
		}
	}
	return utf8.ValidString(id)
}
