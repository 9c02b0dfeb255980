package octanetest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/esimbatch/esimbatch/octane"
)

func TestConcurrentReservationsAreDistinct(t *testing.T) {
	c := newSim(t, Config{Limits: map[string]octane.Limit{}})
	const workers, each = 8, 10
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				r, err := c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, "reserveResources",
					login("demo", "demo")+"<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>1</numResources></reservePooledResourcesRequest>"))
				if err != nil {
					t.Error(err)
					return
				}
				msn := r.text("reservedPooledResources", "resourceValue")
				mu.Lock()
				if seen[msn] {
					t.Errorf("number %s reserved twice", msn)
				}
				seen[msn] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d distinct numbers, want %d", len(seen), workers*each)
	}
}

// FuzzSOAP feeds arbitrary bodies to every SOAP service: the simulator must
// answer (never panic) and never with 200 to something that is not a
// well-formed envelope with a known operation.
func FuzzSOAP(f *testing.F) {
	l := login("demo", "demo")
	for _, seed := range []string{
		"", "<", "<a/>",
		envelope(octane.NSPooledResource, "reserveResources", l+"<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>2</numResources></reservePooledResourcesRequest>"),
		envelope(octane.NSOrder, "orderCreate", l+orderXML(item{custNo: "1", planNo: "1001", msn: "0410000000", isEsim: "true"})),
		envelope(octane.NSOrder, "orderQuery", l+"<request><orderId>700001</orderId></request>"),
		envelope(octane.NSPooledResource, "queryResources", l+"<queryPooledResourcesRequest><queryValue>0410000000"),
	} {
		f.Add(seed)
	}
	s := New(Config{MSNs: 50})
	services := []string{octane.ServicePooledResource, octane.ServiceOrder, octane.ServicePlan}
	f.Fuzz(func(t *testing.T, body string) {
		for _, svc := range services {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/tiab/"+svc, strings.NewReader(body)))
			if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), "Response") {
				t.Fatalf("200 without an operation response: %s", rec.Body.String())
			}
		}
	})
}

// BenchmarkActivation measures one reserve + select + orderCreate + orderQuery
// through HTTP (the simulator's cost per activation; limits lifted).
func BenchmarkActivation(b *testing.B) {
	c := newSim(b, Config{MSNs: 1_000_000, EsimProfiles: 1_000_000, Limits: map[string]octane.Limit{}, Customers: []int64{1}})
	for b.Loop() {
		id, _ := c.newOrder("1")
		c.orderQuery(id)
	}
}
