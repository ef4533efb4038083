// Package api holds the machine-readable REST contract of the service: the OpenAPI 3.0.3
// document that storefronts and operators program against. The server serves it at GET /openapi.yaml, and
// tests check that the routes it describes are the routes the router registers.
package api

import _ "embed"

// Spec is the OpenAPI 3.0.3 document (YAML) of the service's REST API. It is read-only:
// callers must not modify the slice.
//
//go:embed openapi.yaml
var Spec []byte
