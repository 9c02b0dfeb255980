package octane

// Everything the contract marks provisional lives here, so it can be
// corrected against the real WSDL and API without touching callers. The
// simulator imports these too, so client and simulator cannot drift apart.
// README.md lists them under "Provisional Octane shapes".

// SOAP service paths under the SOAP base URL, and their namespaces.
const (
	ServicePooledResource = "UtbPooledResource"
	ServiceOrder          = "UtbOrder"
	ServiceServiceV3      = "UtbServiceV3"
	ServicePlan           = "UtbPlan"

	NSPooledResource = "http://pr.frontend.ws.utilibill.com.au/"
	NSOrder          = "http://order.frontend.ws.utilibill.com.au/"
	NSPlan           = "http://plan.frontend.ws.utilibill.com.au/"
	NSServiceV3      = "http://service.frontend.ws.utilibill.com.au/" // provisional
)

// SOAP envelope namespace (SOAP 1.1).
const NSSoapEnvelope = "http://schemas.xmlsoap.org/soap/envelope/"

// Fault and error codes. 233 is documented; the others are provisional.
const (
	FaultCodeRateLimited = "233"
	// RateLimitHTTPStatus is the HTTP status of a 233 fault (provisional).
	RateLimitHTTPStatus = 500
	// ErrorCodeLogin is the errorCode of a refused SOAP login (provisional).
	ErrorCodeLogin = "100"
	// ErrorCodeUnavailable is the errorCode when a pool is empty (provisional).
	ErrorCodeUnavailable = "301"
	// ErrorCodeRejected is the generic business rejection code the
	// simulator uses (provisional; real codes vary by cause).
	ErrorCodeRejected = "500"
)

// Messages the simulator sends and the client recognises. Matching is
// case-insensitive on a substring, because the real texts are not published.
const (
	MsgLoginFailed        = "Login failed: invalid user name or password"
	MsgLoginMatch         = "login"
	MsgUnavailable        = "Resources are not available"
	MsgUnavailableMatch   = "not available"
	MsgRateLimitedPattern = "Rate limit exceeded for %s. Please try again in some time."
)

// Pooled resource element names in queryResources answers (provisional).
const (
	ElemPooledResource = "pooledResource"
	ResourceTypeMSN    = "WME_MSN"
)

// Number states (contract section 5).
const (
	NumberAvailable = "AVAILABLE"
	NumberReserved  = "RESERVED"
	NumberSelected  = "SELECTED"
	NumberInUse     = "IN_USE"
)

// REST response shapes (provisional): success is the string "true".
const RESTSuccessTrue = "true"

// eSIM details request types.
const (
	EsimRequestQR         = "QR Code"
	EsimRequestSIMDetails = "SIM Details"
)
