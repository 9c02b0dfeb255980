package octane_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

// Concurrent calls reuse their connections: the job calls from 32 workers
// per phase, and a client that kept only net/http's default 2 idle
// connections dialled (over TLS: shook hands) for nearly every call.
func TestConcurrentCallsReuseConnections(t *testing.T) {
	t.Parallel()
	sim := octanetest.New(octanetest.Config{Username: "u", Password: "p"})
	srv := httptest.NewUnstartedServer(sim)
	var dialled atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := octane.New(srv.URL+"/tiab", srv.URL+"/tiab/api", "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 32, 10
	for range rounds {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				if _, err := c.QueryResources(context.Background(), "0410000000"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := dialled.Load(); n > 2*workers {
		t.Errorf("%d calls in rounds of %d opened %d connections, want at most %d", workers*rounds, workers, n, 2*workers)
	}
}
