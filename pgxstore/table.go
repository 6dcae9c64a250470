package pgxstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrInvalidTable is the error, wrapped, of New given a table name that
// WithTable does not accept.
var ErrInvalidTable = errors.New("pgxstore: invalid table name")

// indexSuffix names the expires_at index after its table.
const indexSuffix = "_expires_idx"

// maxIdentifier is PostgreSQL's limit (NAMEDATALEN-1) on identifiers; it
// truncates longer ones, which could make two tables' indexes one.
const maxIdentifier = 63

// tableName is a validated table name, optionally schema-qualified.
type tableName struct {
	schema, name string
}

// parseTable checks s as WithTable documents.
func parseTable(s string) (tableName, error) {
	var t tableName
	schema, name, qualified := strings.Cut(s, ".")
	if !qualified {
		schema, name = "", s
	}
	if qualified {
		if err := checkIdentifier(schema, maxIdentifier); err != nil {
			return t, fmt.Errorf("%w %q: schema: %w", ErrInvalidTable, s, err)
		}
	}
	if err := checkIdentifier(name, maxIdentifier-len(indexSuffix)); err != nil {
		return t, fmt.Errorf("%w %q: %w", ErrInvalidTable, s, err)
	}
	return tableName{schema: schema, name: name}, nil
}

// checkIdentifier accepts ASCII letters, digits and underscores, not
// starting with a digit, 1 to max bytes: names that need no quoting to be
// read back in psql apart from their letter case, and cannot smuggle SQL
// even were quoting forgotten.
func checkIdentifier(s string, max int) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return fmt.Errorf("byte %q at %d: only ASCII letters, digits and _ (not first) are allowed", c, i)
		}
	}
	return nil
}

// sql is the table's quoted, possibly qualified name for SQL text.
func (t tableName) sql() string {
	if t.schema == "" {
		return pgx.Identifier{t.name}.Sanitize()
	}
	return pgx.Identifier{t.schema, t.name}.Sanitize()
}

// index is the quoted name of the expires_at index, which PostgreSQL puts
// in the table's schema.
func (t tableName) index() string {
	return pgx.Identifier{t.name + indexSuffix}.Sanitize()
}

// advisoryLockClass is the first key of the advisory lock under which New
// creates a table ("nhks" in ASCII); the second is a hash of the table's
// name, so that stores of different tables do not wait on each other.
const advisoryLockClass int32 = 0x6e686b73

// ensureTable creates the table unless it exists, running create (its
// CREATE TABLE and CREATE INDEX statements, each IF NOT EXISTS) under the
// advisory lock createTable takes, and checks that it has columns, the
// columns the statements use; kind names the table for that error ("a
// store"). Store, Order and DeadLetters all make their tables this way.
func ensureTable(ctx context.Context, pool *pgxpool.Pool, t tableName, kind, columns string, create ...string) error {
	var exists bool
	// to_regclass first: CREATE TABLE IF NOT EXISTS needs the CREATE
	// privilege on the schema even when the table is there, and a role
	// that only uses a table made by a migration may not have it.
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.sql()).Scan(&exists); err != nil {
		return fmt.Errorf("pgxstore: looking for table %s: %w", t.sql(), err)
	}
	if !exists {
		if err := createTable(ctx, pool, t, create); err != nil {
			return fmt.Errorf("pgxstore: creating table %s: %w", t.sql(), err)
		}
	}
	// Fails now, rather than at the first delivery, when a table of that
	// name exists with other columns.
	if _, err := pool.Exec(ctx, "SELECT "+columns+" FROM "+t.sql()+" LIMIT 0"); err != nil {
		return fmt.Errorf("pgxstore: table %s lacks the columns of %s: %w", t.sql(), kind, err)
	}
	return nil
}

// createTable runs create in one transaction, under an advisory lock.
// Without the lock, replicas starting at once race on the catalog: two
// CREATE TABLE IF NOT EXISTS that both find no table both insert it, and
// one fails on a unique index of pg_type. With it, the second waits for
// the first to commit and then finds the table.
func createTable(ctx context.Context, pool *pgxpool.Pool, t tableName, create []string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", advisoryLockClass, t.sql()); err != nil {
			return err
		}
		for _, stmt := range create {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
}
