package octanetest

import (
	"container/heap"
	"net/http"
	"slices"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

// Expiry is a reservation that lapsed: a number RESERVED (or SELECTED) that
// no order consumed and nobody unreserved within ReservationTTL of its
// reservation, so it went back to AVAILABLE. A batch that releases its
// numbers in time never has one.
type Expiry struct {
	MSN           string
	Credential    string // who held the reservation
	ReservationID string
	State         string // RESERVED or SELECTED when it lapsed
	ReservedAt    time.Time
	ExpiredAt     time.Time // ReservedAt + ReservationTTL, on the business clock
}

// hold is one reservation waiting to lapse. A reservation that ends first
// (unreserved, consumed by an order) leaves its hold behind; it is skipped
// when it comes due, because the number no longer carries its id.
type hold struct {
	until time.Time
	seq   int64 // reservation number: ties lapse in reservation order
	id    string
	n     *number
}

// holdQueue is a min-heap of holds by (until, seq).
type holdQueue []hold

func (q holdQueue) Len() int { return len(q) }
func (q holdQueue) Less(i, j int) bool {
	if !q[i].until.Equal(q[j].until) {
		return q[i].until.Before(q[j].until)
	}
	return q[i].seq < q[j].seq
}
func (q holdQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *holdQueue) Push(x any)   { *q = append(*q, x.(hold)) }
func (q *holdQueue) Pop() any {
	old := *q
	h := old[len(old)-1]
	old[len(old)-1] = hold{}
	*q = old[:len(old)-1]
	return h
}

// hold starts the lifetime of n's reservation (already stamped with its id
// and reservedAt). Called with s.mu held.
func (s *Server) hold(n *number, seq int64) {
	heap.Push(&s.holds, hold{until: n.reservedAt.Add(ReservationTTL), seq: seq, id: n.reservationID, n: n})
}

// expire lapses every reservation whose lifetime ended by now, in the order
// they ended, and records each one. Every path that can observe a number's
// state runs it first, so a lapse is recorded whenever it is seen, and its
// time is the exact end of the lifetime, whenever the sweep ran. Called
// with s.mu held.
func (s *Server) expire(now time.Time) {
	for len(s.holds) > 0 && !now.Before(s.holds[0].until) {
		h := heap.Pop(&s.holds).(hold)
		n := h.n
		if n.reservationID != h.id || (n.state != octane.NumberReserved && n.state != octane.NumberSelected) {
			continue // ended before its time
		}
		s.expired = append(s.expired, Expiry{
			MSN: n.msn, Credential: n.by, ReservationID: n.reservationID, State: n.state,
			ReservedAt: n.reservedAt, ExpiredAt: h.until,
		})
		n.release()
	}
}

// Expired returns every reservation that lapsed up to now (it sweeps at the
// current business clock first), in the order they lapsed.
func (s *Server) Expired() []Expiry {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(s.nowLocked())
	return slices.Clone(s.expired)
}

// expiryJSON is the wire shape of GET /_sim/expired.
type expiryJSON struct {
	MSN           string    `json:"msn"`
	Credential    string    `json:"credential"`
	ReservationID string    `json:"reservation_id"`
	State         string    `json:"state"`
	ReservedAt    time.Time `json:"reserved_at"`
	ExpiredAt     time.Time `json:"expired_at"`
}

func (s *Server) handleExpired(w http.ResponseWriter, r *http.Request) {
	l := s.Expired()
	out := make([]expiryJSON, 0, len(l))
	for _, e := range l {
		out = append(out, expiryJSON(e))
	}
	writeJSON(w, http.StatusOK, out)
}
