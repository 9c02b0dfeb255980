package repo

import (
	"context"
	"time"
)

// ImportChunked is Import with chunk rows per INSERT, so that tests cross
// chunk boundaries with a few thousand rows.
func (s *Store) ImportChunked(ctx context.Context, f ImportFile, rows []NewActivation, rejects []ImportReject, now time.Time, chunk int) (ImportResult, error) {
	return s.importChunked(ctx, f, rows, rejects, now, chunk)
}
