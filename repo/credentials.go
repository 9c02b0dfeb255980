package repo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// CredentialStatus is one credential's share of the database.
type CredentialStatus struct {
	// Credential is the Octane user name; "" stands for the rows no
	// credential has claimed yet.
	Credential string
	// Counts are the rows the credential owns, by state (every state
	// present, 0 if none).
	Counts map[State]int
	// Held counts the numbers the credential holds in Octane (reserved,
	// not consumed and not released).
	Held int
}

// StatusByCredential returns, sorted by credential ("" first), every
// credential that owns a row, holds a number or made a call since
// callsSince: what `batch status` shows per credential. Errors: the
// database's, wrapped.
func (s *Store) StatusByCredential(ctx context.Context, callsSince time.Time) ([]CredentialStatus, error) {
	by := map[string]*CredentialStatus{}
	get := func(c string) *CredentialStatus {
		cs := by[c]
		if cs == nil {
			cs = &CredentialStatus{Credential: c, Counts: make(map[State]int, len(States()))}
			for _, st := range States() {
				cs.Counts[st] = 0
			}
			by[c] = cs
		}
		return cs
	}
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		var rows []struct {
			Credential string `db:"credential"`
			State      State  `db:"state"`
			N          int    `db:"n"`
		}
		if err := tx.SelectContext(ctx, &rows, `SELECT credential, state, COUNT(*) AS n FROM activations GROUP BY credential, state`); err != nil {
			return err
		}
		for _, r := range rows {
			get(r.Credential).Counts[r.State] = r.N
		}
		var held []struct {
			Credential string `db:"credential"`
			N          int    `db:"n"`
		}
		if err := tx.SelectContext(ctx, &held, `SELECT credential, COUNT(*) AS n FROM reservations
WHERE state IN ('free', 'assigned') GROUP BY credential`); err != nil {
			return err
		}
		for _, h := range held {
			get(h.Credential).Held = h.N
		}
		var callers []string
		if err := tx.SelectContext(ctx, &callers, s.q(`SELECT DISTINCT credential FROM calls WHERE sent_at >= ?`), s.t(callsSince)); err != nil {
			return err
		}
		for _, c := range callers {
			get(c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repo: status by credential: %w", err)
	}
	out := make([]CredentialStatus, 0, len(by))
	for _, cs := range by {
		out = append(out, *cs)
	}
	slices.SortFunc(out, func(a, b CredentialStatus) int {
		switch {
		case a.Credential < b.Credential:
			return -1
		case a.Credential > b.Credential:
			return 1
		}
		return 0
	})
	return out, nil
}
