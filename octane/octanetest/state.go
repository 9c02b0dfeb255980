package octanetest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

// resourceTypeSIM is the resourceType of a physical SIM in queryResources
// answers (provisional; the client only reads the statuses).
const resourceTypeSIM = "WME_SIM"

// smdpAddress is the SM-DP+ address in generated activation codes.
const smdpAddress = "smdp.sim.example"

type number struct {
	msn           string
	state         string
	by            string // credential holding the reservation
	reservedAt    time.Time
	reservationID string
	orderID       string
}

func (n *number) release() {
	n.state, n.by, n.reservedAt, n.reservationID, n.orderID = octane.NumberAvailable, "", time.Time{}, "", ""
}

type simCard struct {
	serial string
	state  string // AVAILABLE or IN_USE
}

type order struct {
	Order
	asyncReject bool
	iccid       string // revealed when COMPLETE
	lpa         string
}

func (o *order) public() Order { return o.Order }

// numberState is n's state at now, after the 24 h expiry. Called with s.mu
// held.
func (s *Server) numberState(n *number, now time.Time) string {
	s.expire(now)
	return n.state
}

// settle lapses expired reservations and moves every non-terminal order
// along the business clock. Called with s.mu held.
func (s *Server) settle(now time.Time) {
	s.expire(now)
	// In creation-time order, the orders after the first one too young to
	// move are too young as well: they stay as they are, unvisited.
	end := len(s.pending)
	if !s.pendingUnsorted {
		end = sort.Search(len(s.pending), func(i int) bool {
			return now.Sub(s.pending[i].CreatedAt) < s.cfg.OrderLatency/2
		})
	}
	keep := s.pending[:0]
	for _, o := range s.pending[:end] {
		age := now.Sub(o.CreatedAt)
		switch {
		case age >= s.cfg.OrderLatency && o.asyncReject:
			o.Status = octane.StatusRejected
			o.ErrorMessage = "Simulated rejection: the network refused the service activation"
			if n := s.numbers[o.MSN]; n != nil && n.orderID == o.ID {
				n.release()
			}
			if o.IsEsim {
				s.profiles++
			} else if sc := s.sims[o.SIMNo]; sc != nil {
				sc.state = octane.NumberAvailable
			}
		case age >= s.cfg.OrderLatency:
			o.Status = octane.StatusComplete
			o.ICCID, o.ActivationCode = o.iccid, o.lpa
		case age >= s.cfg.OrderLatency/2:
			o.Status = octane.StatusInProgress
			keep = append(keep, o)
		default:
			keep = append(keep, o)
		}
	}
	keep = append(keep, s.pending[end:]...)
	clear(s.pending[len(keep):])
	s.pending = keep
}

func (s *Server) queryResources(c *soapCall, _ faultPlan) ([]el, LedgerEntry) {
	v := c.op.text("queryPooledResourcesRequest", "queryValue")
	if v == "" {
		return errReturn(c.method, octane.ErrorCodeRejected, "queryValue is required"),
			LedgerEntry{Outcome: OutcomeRejected, Code: octane.ErrorCodeRejected}
	}
	e := LedgerEntry{Outcome: OutcomeOK, Code: "0"}
	var rows []el
	if n, ok := s.numbers[v]; ok {
		e.MSN = v
		rows = append(rows, el{name: octane.ElemPooledResource, kids: []el{
			leaf("resourceValue", v), leaf("resourceType", octane.ResourceTypeMSN),
			leaf("internalStatus", s.numberState(n, s.nowLocked())),
		}})
	} else if sc, ok := s.sims[v]; ok {
		rows = append(rows, el{name: octane.ElemPooledResource, kids: []el{
			leaf("resourceValue", v), leaf("resourceType", resourceTypeSIM),
			leaf("internalStatus", sc.state), leaf("providerStatus", "r"),
		}})
	}
	return okReturn(c.method, rows...), e
}

func (s *Server) reserveResources(c *soapCall, _ faultPlan) ([]el, LedgerEntry) {
	req, _ := c.op.child("reservePooledResourcesRequest")
	rejected := func(msg string) ([]el, LedgerEntry) {
		return errReturn(c.method, octane.ErrorCodeRejected, msg), LedgerEntry{Outcome: OutcomeRejected, Code: octane.ErrorCodeRejected}
	}
	if t := req.text("resourceType"); t != octane.ResourceTypeMSN {
		return rejected(fmt.Sprintf("Invalid resourceType %q (want %s)", t, octane.ResourceTypeMSN))
	}
	n, err := strconv.Atoi(req.text("numResources"))
	if err != nil || n < 1 || n > 5 {
		return rejected(fmt.Sprintf("Invalid numResources %q (want 1 to 5)", req.text("numResources")))
	}
	now := s.nowLocked()
	var got []*number
	// Round-robin from a cursor, so a number just released is not handed
	// out again at once.
	next := s.cursor
	for i := 0; i < len(s.pool) && len(got) < n; i++ {
		idx := (s.cursor + i) % len(s.pool)
		if num := s.pool[idx]; s.numberState(num, now) == octane.NumberAvailable {
			got = append(got, num)
			next = (idx + 1) % len(s.pool)
		}
	}
	if len(got) == 0 {
		return errReturn(c.method, octane.ErrorCodeUnavailable, octane.MsgUnavailable),
			LedgerEntry{Outcome: OutcomeRejected, Code: octane.ErrorCodeUnavailable}
	}
	rows := make([]el, 0, len(got))
	msns := make([]string, 0, len(got))
	for _, num := range got {
		num.state, num.by, num.reservedAt = octane.NumberReserved, c.user, now
		num.reservationID = strconv.FormatInt(s.nextRes, 10)
		s.hold(num, s.nextRes)
		s.nextRes++
		rows = append(rows, el{name: "reservedPooledResources", kids: []el{
			leaf("reservationId", num.reservationID), leaf("resourceValue", num.msn),
		}})
		msns = append(msns, num.msn)
	}
	s.cursor = next
	return okReturn(c.method, rows...), LedgerEntry{Outcome: OutcomeOK, Code: "0", MSN: strings.Join(msns, ",")}
}

// heldNumber finds msn and checks it is held by the caller in one of the
// wanted states. A number another user of the account reserved is refused
// (provisional: the contract's section 6), whatever its state.
func (s *Server) heldNumber(c *soapCall, msn string, states ...string) (*number, string) {
	n, ok := s.numbers[msn]
	if !ok {
		return nil, fmt.Sprintf("Resource %q not found", msn)
	}
	st := s.numberState(n, s.nowLocked())
	for _, want := range states {
		if st == want && n.by == c.user {
			return n, ""
		}
	}
	if st == octane.NumberAvailable {
		return nil, fmt.Sprintf("Resource %s is not reserved", msn)
	}
	if st == octane.NumberInUse {
		return nil, fmt.Sprintf("Resource %s is in use", msn)
	}
	if n.by != c.user {
		return nil, fmt.Sprintf("Resource %s is reserved by another user", msn)
	}
	return nil, fmt.Sprintf("Resource %s is %s", msn, st)
}

func (s *Server) selectResource(c *soapCall, _ faultPlan) ([]el, LedgerEntry) {
	req, _ := c.op.child("selectPooledResourceRequest")
	msn := req.text("resource")
	e := LedgerEntry{MSN: msn}
	if t := req.text("resourceType"); t != octane.ResourceTypeMSN {
		e.Outcome, e.Code = OutcomeRejected, octane.ErrorCodeRejected
		return errReturn(c.method, e.Code, fmt.Sprintf("Invalid resourceType %q (want %s)", t, octane.ResourceTypeMSN)), e
	}
	// Selecting a number already SELECTED by the caller succeeds again, so
	// a retried select after a lost answer is harmless.
	n, msg := s.heldNumber(c, msn, octane.NumberReserved, octane.NumberSelected)
	if n == nil {
		e.Outcome, e.Code = OutcomeRejected, octane.ErrorCodeRejected
		return errReturn(c.method, e.Code, msg), e
	}
	n.state = octane.NumberSelected
	e.Outcome, e.Code = OutcomeOK, "0"
	return okReturn(c.method), e
}

func (s *Server) unreserveResources(c *soapCall, _ faultPlan) ([]el, LedgerEntry) {
	req, _ := c.op.child("unreservePooledResourcesRequest")
	msn := req.text("resource")
	e := LedgerEntry{MSN: msn}
	if t := req.text("resourceType"); t != octane.ResourceTypeMSN {
		e.Outcome, e.Code = OutcomeRejected, octane.ErrorCodeRejected
		return errReturn(c.method, e.Code, fmt.Sprintf("Invalid resourceType %q (want %s)", t, octane.ResourceTypeMSN)), e
	}
	n, msg := s.heldNumber(c, msn, octane.NumberReserved, octane.NumberSelected)
	if n == nil {
		e.Outcome, e.Code = OutcomeRejected, octane.ErrorCodeRejected
		return errReturn(c.method, e.Code, msg), e
	}
	n.release()
	e.Outcome, e.Code = OutcomeOK, "0"
	return okReturn(c.method), e
}

// parseBool accepts xsd:boolean.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

func (s *Server) orderCreate(c *soapCall, p faultPlan) ([]el, LedgerEntry) {
	req, _ := c.op.child("createRequest")
	items, _ := req.child("orderItems")
	item, _ := items.child("wmeNewReqItem")
	_, simNoPresent := item.child("simNo")
	msn := item.text("msn")
	e := LedgerEntry{MSN: msn, SIMNoPresent: simNoPresent}
	reject := func(code, msg string) ([]el, LedgerEntry) {
		e.Outcome, e.Code = OutcomeRejected, code
		return errReturn(c.method, code, msg), e
	}
	custNo, err := strconv.ParseInt(req.text("custNo"), 10, 64)
	switch {
	case req == nil:
		return reject(octane.ErrorCodeRejected, "createRequest is required")
	case err != nil:
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid custNo %q", req.text("custNo")))
	case !s.customers[custNo]:
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Customer %d not found", custNo))
	case req.text("orderType") != "SRVC_ORD":
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid orderType %q (want SRVC_ORD)", req.text("orderType")))
	case req.text("orderAction") != "ADD_WME_NEW":
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid orderAction %q (want ADD_WME_NEW)", req.text("orderAction")))
	case item == nil:
		return reject(octane.ErrorCodeRejected, "orderItems/wmeNewReqItem is required")
	}
	planNo, err := strconv.Atoi(item.text("planNo"))
	if err != nil || !s.plans[planNo] {
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid plan number %q", item.text("planNo")))
	}
	if lt := item.text("lineType"); lt != "R" {
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid lineType %q (want R)", lt))
	}
	isEsim, ok := parseBool(item.text("isEsim"))
	if !ok {
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid isEsim %q (want true or false)", item.text("isEsim")))
	}
	isQR, ok := parseBool(item.text("isQRcode"))
	if !ok && item.text("isQRcode") != "" {
		return reject(octane.ErrorCodeRejected, fmt.Sprintf("Invalid isQRcode %q (want true or false)", item.text("isQRcode")))
	}
	num, msg := s.heldNumber(c, msn, octane.NumberSelected)
	if num == nil {
		if n, ok := s.numbers[msn]; ok && s.numberState(n, s.nowLocked()) == octane.NumberReserved && n.by == c.user {
			msg = fmt.Sprintf("Resource %s is reserved but not selected", msn)
		}
		return reject(octane.ErrorCodeRejected, msg)
	}
	simNo := item.text("simNo")
	var sim *simCard
	if isEsim {
		if simNoPresent {
			return reject(octane.ErrorCodeRejected, "simNo must be absent for an eSIM order")
		}
		if s.profiles <= 0 {
			return reject(octane.ErrorCodeUnavailable, octane.MsgUnavailable)
		}
	} else {
		sim = s.sims[simNo]
		if sim == nil || sim.state != octane.NumberAvailable {
			return reject(octane.ErrorCodeRejected, fmt.Sprintf("SIM %q is not available", simNo))
		}
	}

	now := s.nowLocked()
	o := &order{Order: Order{
		ID: strconv.FormatInt(s.nextOrder, 10), MSN: msn, CustNo: custNo, PlanNo: planNo,
		IsEsim: isEsim, IsQRCode: isQR, LineName: item.text("lineName"), Status: octane.StatusOpen,
		CreatedAt: now, Notes: item.text("orderNotes"), Email: item.text("notificationEmail"),
		SIMNo: simNo, SIMNoPresent: simNoPresent, LoginPresent: c.loginPresent, Credential: c.user,
	}, asyncReject: p.asyncReject}
	s.nextOrder++
	if isEsim {
		s.profiles--
		o.iccid = s.newICCID()
		o.lpa = fmt.Sprintf("LPA:1$%s$%s-%08X", smdpAddress, o.ID, s.idRNG.Uint32())
	} else {
		sim.state = octane.NumberInUse
		o.iccid = simNo
	}
	num.state, num.orderID = octane.NumberInUse, o.ID
	s.orders[o.ID] = o
	s.orderList = append(s.orderList, o)
	if n := len(s.pending); n > 0 && o.CreatedAt.Before(s.pending[n-1].CreatedAt) {
		s.pendingUnsorted = true
	}
	s.pending = append(s.pending, o)
	e.Outcome, e.Code, e.OrderID = OutcomeOK, "0", o.ID
	return okReturn(c.method, leaf("orderId", o.ID)), e
}

// newICCID makes a unique 20-digit ICCID (89 61 ... + Luhn digit).
func (s *Server) newICCID() string {
	body := fmt.Sprintf("896101%013d", s.nextICCID)
	s.nextICCID++
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}

func (s *Server) orderQuery(c *soapCall, _ faultPlan) ([]el, LedgerEntry) {
	id := c.op.text("request", "orderId")
	o, ok := s.orders[id]
	if !ok {
		return errReturn(c.method, octane.ErrorCodeRejected, fmt.Sprintf("Order %q not found", id)),
			LedgerEntry{Outcome: OutcomeRejected, Code: octane.ErrorCodeRejected, OrderID: id}
	}
	if o.Credential != c.user {
		// Provisional (contract section 6): only the user who created an
		// order queries it; other users of the account may be able to on
		// the real Octane, but the job must not rely on it.
		return errReturn(c.method, octane.ErrorCodeRejected, fmt.Sprintf("Order %s was created by another user", id)),
			LedgerEntry{Outcome: OutcomeRejected, Code: octane.ErrorCodeRejected, OrderID: id, MSN: o.MSN}
	}
	kids := []el{leaf("orderId", o.ID), leaf("status", o.Status)}
	switch o.Status {
	case octane.StatusComplete:
		kids = append(kids, leaf("serviceNumber", o.MSN))
	case octane.StatusRejected, octane.StatusCancelled:
		kids = append(kids, leaf("errorMessage", o.ErrorMessage))
	}
	return okReturn(c.method, el{name: "orderQueryResponse", kids: kids}),
		LedgerEntry{Outcome: OutcomeOK, Code: "0", OrderID: id, MSN: o.MSN}
}
