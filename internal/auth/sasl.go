package auth

import (
	"encoding/json"
	"strings"

	"github.com/emersion/go-sasl"
)

// oauthClient is a SASL client for a bearer token that records the
// server's error report (a JSON challenge) for the error message.
type oauthClient interface {
	sasl.Client
	failure() *string
}

// xoauth2Client is SASL XOAUTH2 (Google's and Microsoft's): go-sasl
// dropped it. The initial response is
// "user=" USER ^A "auth=Bearer " TOKEN ^A ^A. A refused token gets a
// challenge holding a JSON error report, to which the client answers with
// an empty response; the server then ends the command with NO.
type xoauth2Client struct {
	user, token string
	report      string
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return string(MechXOAuth2), []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	c.report = errorReport(challenge)
	return []byte{}, nil
}

func (c *xoauth2Client) failure() *string { return &c.report }

// oauthBearerClient is SASL OAUTHBEARER (RFC 7628). go-sasl has one, but
// its Next returns an error on the server's error challenge, which leaves
// the AUTHENTICATE command half done; RFC 7628 (3.2.3) wants the client
// to answer with a single ^A, after which the server ends the command with
// a failure.
type oauthBearerClient struct {
	user, token string
	report      string
}

func (c *oauthBearerClient) Start() (string, []byte, error) {
	return string(MechOAuthBearer), []byte("n,a=" + gs2Escape(c.user) + ",\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	c.report = errorReport(challenge)
	return []byte{0x01}, nil
}

func (c *oauthBearerClient) failure() *string { return &c.report }

// gs2Escape escapes a GS2 authorization identity (RFC 5801: "," as =2C,
// "=" as =3D).
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// errorReport renders the JSON error of RFC 7628 (3.2.2) that XOAUTH2
// servers send as well: {"status":"invalid_token","scope":"…"}. It holds
// no secret. Anything else is summarised, never repeated.
func errorReport(challenge []byte) string {
	var r struct {
		Status string `json:"status"`
		Scope  string `json:"scope"`
	}
	if err := json.Unmarshal(challenge, &r); err != nil || r.Status == "" {
		return "the server sent an error report mailvault cannot read"
	}
	s := "status " + r.Status
	if r.Scope != "" {
		s += ", scope " + r.Scope
	}
	return s
}
