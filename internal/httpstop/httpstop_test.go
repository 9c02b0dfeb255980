package httpstop

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// serve starts srv on a loopback port and returns its address and the
// result of Serve.
func serve(t *testing.T, srv *http.Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), done
}

// dialUnused opens a connection that sends nothing and waits until the
// server has accepted it.
func dialUnused(t *testing.T, addr string, accepted <-chan struct{}) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not accept the connection")
	}
	return c
}

// newHook reports each connection the server sees in StateNew.
func newHook() (func(net.Conn, http.ConnState), <-chan struct{}) {
	accepted := make(chan struct{}, 8)
	return func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			accepted <- struct{}{}
		}
	}, accepted
}

func TestShutdownClosesAConnectionWithoutARequest(t *testing.T) {
	hook, accepted := newHook()
	srv := &http.Server{Handler: http.NotFoundHandler(), ConnState: hook}
	CloseUnused(srv) // dialUnused below also checks that hook still runs
	addr, done := serve(t, srv)
	c := dialUnused(t, addr, accepted)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an unused connection open: %v, want nil within 1 s", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the unused connection is still open after Shutdown")
	}
}

// Without CloseUnused, the same Shutdown fails: the case the package exists
// for, so the test above cannot pass on net/http's behaviour alone.
func TestPlainShutdownWaitsForAConnectionWithoutARequest(t *testing.T) {
	hook, accepted := newHook()
	srv := &http.Server{Handler: http.NotFoundHandler(), ConnState: hook}
	addr, _ := serve(t, srv)
	dialUnused(t, addr, accepted)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("plain Shutdown with an unused connection open: %v, want context.DeadlineExceeded", err)
	}
}

func TestShutdownLetsARequestInProgressFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})}
	CloseUnused(srv)
	addr, _ := serve(t, srv)

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-started

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// Shutdown must wait for the handler, not cut it off with the fresh
	// connections.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Fatalf("the request in progress got %q, %v; want \"done\"", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown after the request finished: %v", err)
	}
}
