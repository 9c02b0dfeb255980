package repo

// Step names one step of an activation's life. The same names are written to
// the event log, to last_error_step (and so the Failures sheet) and to the
// per-phase counters, so an operator reading any of them reads one
// vocabulary. Steps that are an Octane call carry the method's name.
type Step string

// The steps, in lifecycle order.
const (
	StepImport    Step = "import"           // the row was loaded from a sales file
	StepCustomer  Step = "addCustomer"      // REST addCustomer, for rows without a customer number
	StepSIMCheck  Step = "simCheck"         // queryResources on a physical SIM's serial
	StepReserve   Step = "reserveResources" // a number reserved for the row
	StepSelect    Step = "selectResource"   // the reserved number selected
	StepOrder     Step = "orderCreate"      // the intent written, the order sent
	StepReconcile Step = "reconcile"        // queryResources on the MSN after an unknown orderCreate outcome
	StepRelease   Step = "release"          // an unused number given back
	StepPoll      Step = "orderQuery"       // the order's status asked for
	StepQR        Step = "getEsimDetails"   // the QR code fetched
	StepRetry     Step = "retry"            // an operator put the row back (batch retry)
	StepCancel    Step = "cancel"           // an operator cancelled the row before its order (batch cancel)
	StepReassign  Step = "reassign"         // an operator handed the row to another credential (batch reassign); never a failure
)

// Steps lists every step in lifecycle order.
func Steps() []Step {
	return []Step{StepImport, StepCustomer, StepSIMCheck, StepReserve, StepSelect, StepOrder,
		StepReconcile, StepRelease, StepPoll, StepQR, StepRetry, StepCancel, StepReassign}
}
