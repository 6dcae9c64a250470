package pgxstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nectarhooks/nectarhooks"
)

// Errors of CompleteTx and CompleteSQLTx.
var (
	// ErrClaimLost: the callback's claim on its message is no longer the
	// message's: its lease ran out and another delivery claimed the
	// message, or completed it. The transaction must roll back, so that
	// the callback's writes are not made twice; the Handler then answers
	// 500 and Svix's next delivery finds the message processed (or in
	// flight under its new holder).
	ErrClaimLost = errors.New("pgxstore: the claim on the message was taken over")
	// ErrNoClaim: the context is not a callback's under a Handler with
	// WithIdempotency, so there is no claim to complete.
	ErrNoClaim = errors.New("pgxstore: no idempotency claim in the context (is the Handler's WithIdempotency this Store?)")
)

// CompleteTx records the message of the callback whose context ctx is as
// processed, inside tx, the transaction of the callback's own writes: they
// then commit together, or not at all, and a replica that dies between
// its writes and its answer leaves the message processed and written
// exactly once. Call it last in the transaction, then commit and return
// Commit's error:
//
//	h.OnConnectionUpdated(func(ctx context.Context, e *nectarhooks.ConnectionUpdated) error {
//		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//			if _, err := tx.Exec(ctx, `UPDATE connections SET status = $1 WHERE id = $2`, e.Status, e.ID); err != nil {
//				return err
//			}
//			return store.CompleteTx(ctx, tx)
//		})
//	})
//
// It completes the row of the claim's Key (nectarhooks.Claimed.Key: the
// account's, under nectarhooks.NewAccountHandler), fenced by the claim's
// token (nectarhooks.ClaimFromContext): when
// the claim was taken over meanwhile, or the message completed by another
// delivery, it returns an error matching ErrClaimLost, and the transaction
// must roll back (pgx.BeginFunc does so for any error). It returns
// ErrNoClaim when ctx carries no claim. A claim whose lease ran out with
// nobody taking the message over still completes, as Complete does.
//
// On success it marks the claim completed (Claimed.MarkCompleted), so that
// the Handler makes no Complete of its own once the callback returns nil.
// The Store must be the one the Handler was given with WithIdempotency,
// or one on the same table. Every 256th CompleteTx also deletes expired
// rows first, on a connection of the Store's pool, as Complete does.
func (s *Store) CompleteTx(ctx context.Context, tx pgx.Tx) error {
	claim, err := s.beginCompleteTx(ctx)
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, s.completeTxSQL, key(claim.Key), parseToken(claim.Token), s.ttl)
	if err != nil {
		return fmt.Errorf("pgxstore: complete in transaction: %w", err)
	}
	return endCompleteTx(claim, tag.RowsAffected())
}

// CompleteSQLTx is CompleteTx for a database/sql transaction, as opened
// through pgx's stdlib driver or lib/pq: the same statement, fence and
// errors.
func (s *Store) CompleteSQLTx(ctx context.Context, tx *sql.Tx) error {
	claim, err := s.beginCompleteTx(ctx)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, s.completeTxSQL, key(claim.Key), parseToken(claim.Token), s.ttl)
	if err != nil {
		return fmt.Errorf("pgxstore: complete in transaction: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("pgxstore: complete in transaction: %w", err)
	}
	return endCompleteTx(claim, n)
}

// beginCompleteTx finds the claim, and cleans up when one is due.
func (s *Store) beginCompleteTx(ctx context.Context) (nectarhooks.Claimed, error) {
	claim, ok := nectarhooks.ClaimFromContext(ctx)
	if !ok {
		return claim, ErrNoClaim
	}
	// The Handler makes no Complete after a CompleteTx: the cleanups it
	// would schedule are scheduled here instead, outside the caller's
	// transaction so that a failed cleanup cannot abort it.
	if n := s.completes.Add(1); n%s.cleanupEvery == 0 {
		if _, err := s.deleteExpired(ctx); err != nil {
			s.completes.Add(^uint64(0))
		}
	}
	return claim, nil
}

// endCompleteTx reports the statement's outcome and marks the claim.
func endCompleteTx(claim nectarhooks.Claimed, rows int64) error {
	if rows == 0 {
		return fmt.Errorf("%w: message %s", ErrClaimLost, claim.MessageID)
	}
	claim.MarkCompleted()
	return nil
}
