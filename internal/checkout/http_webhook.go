package checkout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
)

// stripeWebhook receives Stripe's events (verified by Stripe-Signature).
func (h *Handler) stripeWebhook(c echo.Context) error {
	body, err := httpx.ReadBody(c)
	if err != nil {
		return err
	}
	if h.stripe == nil {
		return httpx.Unauthorized("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
	}
	ev, err := h.stripe(body, c.Request().Header.Get("Stripe-Signature"))
	if err != nil {
		if errors.Is(err, ErrBadSignature) {
			return httpx.Unauthorized("missing or invalid Stripe-Signature")
		}
		return httpx.BadRequest("malformed Stripe event")
	}
	if ev.ID == "" || len(ev.ID) > 255 || len(ev.IntentID) > 255 {
		return httpx.BadRequest("malformed Stripe event")
	}
	applied, err := h.svc.HandlePaymentEvent(c.Request().Context(), ev)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"received": true, "duplicate": !applied})
}

type webhookRequest struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	PaymentIntentID string `json:"payment_intent_id"`
}

// validSignature checks X-Signature = "sha256=<hex HMAC-SHA256 of the raw body>" in
// constant time.
func (h *Handler) validSignature(body []byte, header string) bool {
	if len(h.secret) == 0 {
		return false
	}
	const prefix = "sha256="
	if len(header) != len(prefix)+64 || header[:len(prefix)] != prefix { // lower case, as documented
		return false
	}
	got, err := hex.DecodeString(header[len(prefix):])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}

// Sign returns the X-Signature value of body under secret (for tests and tooling).
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (h *Handler) webhook(c echo.Context) error {
	body, err := httpx.ReadBody(c)
	if err != nil {
		return err
	}
	if !h.validSignature(body, c.Request().Header.Get(HeaderSignature)) {
		return httpx.Unauthorized("missing or invalid X-Signature")
	}
	var req webhookRequest
	if err := httpx.DecodeStrict(body, &req); err != nil {
		return err
	}
	t := EventType(req.Type)
	switch {
	case req.ID == "" || len(req.ID) > 255:
		return httpx.BadRequest("id must be 1-255 characters")
	case t != EventIntentSucceeded && t != EventIntentFailed:
		return httpx.BadRequest("type must be payment_intent.succeeded or payment_intent.payment_failed")
	case req.PaymentIntentID == "" || len(req.PaymentIntentID) > 255:
		return httpx.BadRequest("payment_intent_id must be 1-255 characters")
	}
	applied, err := h.svc.HandlePaymentEvent(c.Request().Context(),
		PaymentEvent{ID: req.ID, Type: t, IntentID: req.PaymentIntentID})
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"received": true, "duplicate": !applied})
}
