package pgxstore

import (
	"context"
	"fmt"
)

// DeleteExpired deletes every row past its expires_at (leases that ended
// without a Complete or Release, and processed messages past their TTL),
// in batches of 1024, and reports how many it deleted. Stores do this on
// their own as they go (see the package documentation); DeleteExpired is
// for a service that would rather do it on a schedule of its own, or once
// after a long pause. It is safe to run while Stores are in use, from any
// number of processes.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := s.deleteExpired(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n < int64(s.cleanupBatch) {
			return total, nil
		}
	}
}

// deleteExpired deletes up to one batch of expired rows, oldest first.
func (s *Store) deleteExpired(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, s.cleanupSQL, s.cleanupBatch)
	if err != nil {
		return 0, fmt.Errorf("pgxstore: deleting expired rows: %w", err)
	}
	return tag.RowsAffected(), nil
}
