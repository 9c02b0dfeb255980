package octanetest

import (
	"bytes"
	"image"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/esimbatch/esimbatch/octane"
)

// Orders move by age whatever order they were created in: settle skips the
// young tail of pending only while creation times never went back.
func TestSettleByAgeWhenTheClockGoesBack(t *testing.T) {
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	c := newSim(t, Config{Now: func() time.Time { return now }, OrderLatency: 10 * time.Minute})
	cust := c.addCustomer()
	first, _ := c.newOrder(cust)
	now = now.Add(8 * time.Minute)
	second, _ := c.newOrder(cust)
	now = now.Add(-6 * time.Minute) // 2 minutes after the first order
	third, _ := c.newOrder(cust)
	if !c.s.pendingUnsorted {
		t.Fatal("an order created before the one ahead of it did not mark pending unsorted")
	}
	status := func(id string) string {
		t.Helper()
		return c.orderQuery(id).text("orderQueryResponse", "status")
	}
	now = now.Add(9 * time.Minute) // ages: first 11 min, second 3, third 9
	if got := []string{status(first), status(second), status(third)}; got[0] != octane.StatusComplete ||
		got[1] != octane.StatusOpen || got[2] != octane.StatusInProgress {
		t.Fatalf("statuses %v, want COMPLETE, OPEN, IN_PROGRESS by age", got)
	}
}

// In creation order, the young orders at the end stay open while the old
// ones complete.
func TestSettleSkipsOnlyYoungOrders(t *testing.T) {
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	c := newSim(t, Config{Now: func() time.Time { return now }, OrderLatency: 10 * time.Minute})
	cust := c.addCustomer()
	var ids []string
	for range 4 {
		id, _ := c.newOrder(cust)
		ids = append(ids, id)
		now = now.Add(4 * time.Minute)
	}
	// ages: 16, 12, 8, 4 minutes
	want := []string{octane.StatusComplete, octane.StatusComplete, octane.StatusInProgress, octane.StatusOpen}
	for i, id := range ids {
		if got := c.orderQuery(id).text("orderQueryResponse", "status"); got != want[i] {
			t.Errorf("order %d (age %d min): %s, want %s", i, 16-4*i, got, want[i])
		}
	}
	if c.s.pendingUnsorted || len(c.s.pending) != 2 {
		t.Errorf("pending: %d orders (unsorted %v), want the 2 not complete", len(c.s.pending), c.s.pendingUnsorted)
	}
}

// The simulator's QR image has exactly the pixels of go-qrcode's Encode at
// the same size and recovery level; only the compression differs.
func TestQRPNGHasEncodesPixels(t *testing.T) {
	for _, code := range []string{"LPA:1$smdp.sim.example$700001-0000ABCD", "LPA:1$x$y", "LPA:1$smdp.sim.example$799999-FFFFFFFF"} {
		got, err := qrPNG(code)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := qrcode.Encode(code, qrcode.Medium, qrPixels)
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := image.Decode(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", code, err)
		}
		b, _, err := image.Decode(bytes.NewReader(ref))
		if err != nil {
			t.Fatal(err)
		}
		if a.Bounds() != b.Bounds() {
			t.Fatalf("%s: bounds %v, want %v", code, a.Bounds(), b.Bounds())
		}
		for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
			for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
				r1, g1, b1, a1 := a.At(x, y).RGBA()
				r2, g2, b2, a2 := b.At(x, y).RGBA()
				if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
					t.Fatalf("%s: pixel (%d, %d) differs", code, x, y)
				}
			}
		}
	}
}
