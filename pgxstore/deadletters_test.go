package pgxstore

import (
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nectarhooks/nectarhooks"
	"github.com/nectarhooks/nectarhooks/nectarhookstest"
	"github.com/stretchr/testify/require"
)

// TestDeadLettersConformance runs the DeadLetterStore conformance suite:
// each namespace is a table of its own, and each store a DeadLetters with
// a pool of its own, as a replica has.
func TestDeadLettersConformance(t *testing.T) {
	var (
		mu      sync.Mutex
		created = map[string]bool{}
	)
	nectarhookstest.TestDeadLetterStore(t, func(t *testing.T, opts nectarhookstest.StoreOptions) nectarhooks.DeadLetterStore {
		table := "nectarhooks_dead_" + opts.Namespace
		nectarhookstest.PostgresURL(t)
		mu.Lock()
		if !created[opts.Namespace] {
			created[opts.Namespace] = true
			dropAtEnd(t, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
		}
		mu.Unlock()
		s, err := NewDeadLetters(testContext(t), newPool(t, nil), table)
		require.NoError(t, err)
		return s
	})
}

func TestNewDeadLettersRefuses(t *testing.T) {
	pool := newPool(t, nil)
	for _, tt := range []struct {
		name, table string
		want        string
	}{
		{"invalid name", "dead letters", "invalid table name"},
		{"a table of other columns", testTable(t), "lacks the columns of a dead-letter table"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "a table of other columns" {
				_, err := New(testContext(t), pool, WithTable(tt.table))
				require.NoError(t, err)
			}
			_, err := NewDeadLetters(testContext(t), pool, tt.table)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// A dead-letter table made before dead letters were kept per account (no
// account column, the id alone its key) is refused with the error that
// names the columns, rather than used with the wrong key.
func TestNewDeadLettersRefusesTableWithoutAccounts(t *testing.T) {
	pool := newPool(t, nil)
	table := testTable(t)
	_, err := pool.Exec(testContext(t), `CREATE TABLE `+pgx.Identifier{table}.Sanitize()+` (
	id text PRIMARY KEY, event_type text NOT NULL, payload bytea NOT NULL, svix_timestamp timestamptz NOT NULL,
	error text NOT NULL, attempts integer NOT NULL, first_failed_at timestamptz NOT NULL,
	last_failed_at timestamptz NOT NULL, claim_token bigint, claimed_until timestamptz)`)
	require.NoError(t, err)
	_, err = NewDeadLetters(testContext(t), pool, table)
	require.ErrorContains(t, err, "lacks the columns of a dead-letter table")
}
