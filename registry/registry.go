// Package registry owns ferry's recorded state: for every job and every path,
// what the local file was, what ferry last put on the remote, where the path
// stands (pending, transferring, done, failed), and the totals of every run.
// It is an embedded SQLite database in WAL mode, with its schema embedded as
// numbered migrations; the SQL stays portable so the same schema can later
// run on PostgreSQL.
//
// The registry is the only source of "what is done": a run that dies at any
// instant is completed by the next one, which reads it here.
package registry

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // the pure-Go SQLite driver: the binary stays static
	sqlite3 "modernc.org/sqlite/lib"
)

// DBFile is the database's name inside the state directory.
const DBFile = "ferry.db"

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open registry.
type DB struct {
	sql  *sql.DB
	path string
	id   string

	stmtMu sync.Mutex
	ws     *writerStmts // see writerStmts
}

// Open opens (creating if needed) the registry in stateDir and brings its
// schema up to date.
func Open(ctx context.Context, stateDir string) (*DB, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: state directory: %w", err)
	}
	p := filepath.Join(stateDir, DBFile)
	// One connection: SQLite has one writer anyway, and a single connection
	// makes every statement see the previous one's effects.
	dsn := "file:" + p + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", p, err)
	}
	sdb.SetMaxOpenConns(1)
	if err := connect(ctx, sdb); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("registry %s: %w", p, err)
	}
	db := &DB{sql: sdb, path: p}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	if err := db.ensureID(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

// connect opens the connection. Its PRAGMA journal_mode=WAL, run while
// another connection opens the same new database (a daemon's jobs start
// together), can fail with SQLITE_BUSY at once, without waiting out
// busy_timeout (SQLite gives up rather than risk a deadlock between two
// upgrading locks): it is tried again for as long as busy_timeout.
func connect(ctx context.Context, sdb *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := sdb.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// migrate applies the embedded migrations newer than the recorded version,
// each in its own transaction.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("registry %s: %w", db.path, err)
	}
	var cur int
	err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur)
	if err != nil {
		return fmt.Errorf("registry %s: schema version: %w", db.path, err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	latest := 0
	for _, name := range names {
		v, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("registry: migration %s: bad number", name)
		}
		latest = v
		if v <= cur {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		// Another open of this state directory (the daemon's other jobs
		// start at the same moment) may have applied it since the version
		// was read: the transaction holds the write lock, so look again.
		var now int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&now); err != nil {
			tx.Rollback()
			return fmt.Errorf("registry %s: schema version: %w", db.path, err)
		}
		if v <= now {
			tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("registry: migration %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version(version) VALUES (?)`, v); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("registry: migration %s: %w", name, err)
		}
	}
	if cur > latest {
		return fmt.Errorf("registry %s: schema version %d is newer than this ferry knows (%d); use a newer ferry", db.path, cur, latest)
	}
	return nil
}

// ErrChanged reports that a job's name is reused for another source or
// target, which would mix two mirrors' records.
var ErrChanged = errors.New("job recorded with another source or target")

// Job returns the job called name, creating it on first use. A job whose
// source or target changed is refused: its records describe another mirror.
func (db *DB) Job(ctx context.Context, name, source, target string) (*Job, error) {
	j := &Job{db: db, Name: name}
	var src, tgt string
	err := db.sql.QueryRowContext(ctx, `SELECT id, source, target, listed_at FROM job WHERE name = ?`, name).Scan(&j.ID, &src, &tgt, &j.ListedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		res, err := db.sql.ExecContext(ctx, `INSERT INTO job(name, source, target) VALUES (?, ?, ?)`, name, source, target)
		if err != nil {
			return nil, fmt.Errorf("registry: create job %q: %w", name, err)
		}
		j.ID, err = res.LastInsertId()
		return j, err
	case err != nil:
		return nil, fmt.Errorf("registry: job %q: %w", name, err)
	}
	if src != source || tgt != target {
		return nil, fmt.Errorf("registry %s: job %q: %w (recorded %s → %s, now %s → %s); use another --state directory or job name", db.path, name, ErrChanged, src, tgt, source, target)
	}
	return j, nil
}
