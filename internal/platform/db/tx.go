package db

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tx is a PostgreSQL transaction that one package opens and another writes in: the
// inventory's sale transaction, in which checkout places the order, or a refund's
// transaction, in which the inventory records a restock. It has only the statement
// methods, so whoever receives it can neither commit nor roll back what it did not
// open; a pgx.Tx is one.
type Tx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var _ Tx = pgx.Tx(nil)
