// Package httpstop lets an http.Server shut down promptly when a client has
// opened a connection but not sent a request on it.
//
// net/http's Server.Shutdown closes idle connections and waits for active
// ones, but it counts a connection that has not yet sent its first request
// (http.StateNew) as active until it is 5 s old. An HTTP client keeping a
// pool of connections (the job's Octane client keeps up to 128) can dial one
// that it then never uses, and a Prometheus scraper or a probe can do the
// same; a Shutdown given 5 s or less then fails with "context deadline
// exceeded" although no request was in progress.
package httpstop

import (
	"net"
	"net/http"
	"sync"
)

// CloseUnused makes srv's Shutdown close, at once, every connection that has
// not sent a request yet, and any accepted while it shuts down: they carry
// nothing to finish. Requests in progress still end within Shutdown's
// context; a request whose header is still arriving when Shutdown starts is
// cut off with its connection, as the server is going away. Call it before srv serves; it keeps a ConnState hook srv already
// has.
func CloseUnused(srv *http.Server) {
	t := &tracker{fresh: map[net.Conn]struct{}{}}
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		t.state(c, st)
		if next != nil {
			next(c, st)
		}
	}
	srv.RegisterOnShutdown(t.closeFresh)
}

// tracker holds the connections in http.StateNew.
type tracker struct {
	mu       sync.Mutex
	fresh    map[net.Conn]struct{}
	stopping bool
}

func (t *tracker) state(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case st == http.StateNew && t.stopping:
		_ = c.Close()
	case st == http.StateNew:
		t.fresh[c] = struct{}{}
	default:
		delete(t.fresh, c)
	}
}

// closeFresh runs when Shutdown starts (after the listeners are closed).
func (t *tracker) closeFresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopping = true
	for c := range t.fresh {
		_ = c.Close()
		delete(t.fresh, c)
	}
}
