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

// Order status values (provisional, contract 3.7).
const (
	StatusOpen       = "OPEN"
	StatusInProgress = "IN_PROGRESS"
	StatusComplete   = "COMPLETE"
	StatusRejected   = "REJECTED"
	StatusCancelled  = "CANCELLED"
)

// Wire shapes the contract marks provisional. The other request and
// response structs (fully documented) live in soap.go and rest.go.

// unreserveResources: the operation's name and request shape (contract 3.5).
type unreserveResourcesRequest struct {
	XMLName      struct{} `xml:"unreservePooledResourcesRequest"`
	ResourceType string   `xml:"resourceType"`
	Resource     string   `xml:"resource"`
}

// queryResources answer: the pooledResource element names (contract 3.2).
type queryResourcesReturn struct {
	soapStatus
	Resources []struct {
		Value          string `xml:"resourceValue"`
		Type           string `xml:"resourceType"`
		InternalStatus string `xml:"internalStatus"`
		ProviderStatus string `xml:"providerStatus"`
	} `xml:"pooledResource"`
}

// orderQuery answer; its status values are the Status constants above
// (contract 3.7).
type orderQueryReturn struct {
	soapStatus
	Order struct {
		OrderID        string `xml:"orderId"`
		Status         string `xml:"status"`
		InternalStatus string `xml:"internalStatus"`
		ServiceNumber  string `xml:"serviceNumber"`
		ErrorMessage   string `xml:"errorMessage"`
	} `xml:"orderQueryResponse"`
}

// restStatus is the part every REST answer shares (provisional shape).
type restStatus struct {
	Success   flexString `json:"success"`
	Message   string     `json:"message"`
	ErrorCode flexString `json:"errorCode"`
}

func (s *restStatus) rest() *restStatus { return s }

type restAnswer interface{ rest() *restStatus }

type addCustomerAnswer struct {
	restStatus
	CustNo flexString `json:"custNo"`
}

type esimAnswer struct {
	restStatus
	MSN            string `json:"msn"`
	ICCID          string `json:"iccid"`
	ActivationCode string `json:"activationCode"`
	QRCode         string `json:"qrCode"`
	ProfileState   string `json:"profileState"`
}
