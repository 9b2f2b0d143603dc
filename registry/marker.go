package registry

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// ensureID gives the registry its identity on first open and loads it.
func (db *DB) ensureID(ctx context.Context) error {
	// In one transaction (it takes the write lock at once): two first
	// opens at the same moment must not each write an identity of their own.
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("registry %s: identity: %w", db.path, err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `SELECT id FROM registry_info`).Scan(&db.id)
	if err == nil {
		return tx.Commit()
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("registry %s: identity: %w", db.path, err)
	}
	db.id = NewToken()
	if _, err := tx.ExecContext(ctx, `INSERT INTO registry_info(id) VALUES (?)`, db.id); err != nil {
		return fmt.Errorf("registry %s: identity: %w", db.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("registry %s: identity: %w", db.path, err)
	}
	return nil
}

// ID is the registry's identity: random, made at its first open, kept for
// its life. Two state directories never share one.
func (db *DB) ID() string { return db.id }

// NewToken returns 128 random bits in hex.
func NewToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on the systems Go supports
	}
	return hex.EncodeToString(b[:])
}

// Marker is what a job last wrote in the marker at the root of its target.
type Marker struct {
	Token string // "" = no marker written yet
	Size  int64  // bytes, as written
	Mtime int64  // unix ns, as set on the remote (0 when the server cannot set it)
}

// Marker returns what the job last wrote in its target's marker.
func (j *Job) Marker(ctx context.Context) (Marker, error) {
	var m Marker
	err := j.db.sql.QueryRowContext(ctx, `SELECT marker_token, marker_size, marker_mtime FROM job WHERE id = ?`, j.ID).Scan(&m.Token, &m.Size, &m.Mtime)
	if err != nil {
		return m, fmt.Errorf("registry: job %q: marker: %w", j.Name, err)
	}
	return m, nil
}

// MarkerWritten records the marker the job just put on its target: from
// now on, a run that finds another one there does not trust the registry.
func (j *Job) MarkerWritten(ctx context.Context, m Marker) error {
	_, err := j.db.sql.ExecContext(ctx, `UPDATE job SET marker_token = ?, marker_size = ?, marker_mtime = ? WHERE id = ?`, m.Token, m.Size, m.Mtime, j.ID)
	if err != nil {
		return fmt.Errorf("registry: job %q: record the marker: %w", j.Name, err)
	}
	return nil
}
