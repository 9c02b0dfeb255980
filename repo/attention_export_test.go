package repo

import "time"

// DBTime is the store's own conversion of a time argument (microseconds; on
// SQLite the fixed-width text), for tests that set times with plain SQL.
func (s *Store) DBTime(x time.Time) any { return s.t(x) }
