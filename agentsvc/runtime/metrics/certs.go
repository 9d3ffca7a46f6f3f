package metrics

import (
	"crypto/x509"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// ExpiryWarning is how close to its expiry a certificate is logged as a
// warning (once a day) and raises the CloudWatch alarm.
const ExpiryWarning = 30 * 24 * time.Hour

// certExpiry is one certificate the agent depends on.
type certExpiry struct {
	label    string // "serving", or "ca:<subject CN>#<serial>"
	cert     *x509.Certificate
	notAfter time.Time
}

// certificates lists the serving certificate, then each CA of the bundle.
// A CA is labelled by its common name and serial number (upper-case hex, as
// openssl x509 -serial prints it): during a CA rotation the current and the
// next CA carry the same name, and only the serial tells them apart. A
// bundle holds at most two CAs, so the label set stays small.
func certificates(b *certload.Bundle) []certExpiry {
	if b == nil {
		return nil
	}
	out := []certExpiry{{label: "serving", cert: b.Leaf(), notAfter: b.Leaf().NotAfter}}
	for _, ca := range b.CACerts {
		label := fmt.Sprintf("ca:%s#%X", ca.Subject.CommonName, ca.SerialNumber)
		out = append(out, certExpiry{label: label, cert: ca, notAfter: ca.NotAfter})
	}
	return out
}

// DaysLeft is the time from now to notAfter in days, rounded down to a
// hundredth (negative once expired).
func DaysLeft(notAfter, now time.Time) float64 {
	return math.Floor(notAfter.Sub(now).Hours()/24*100) / 100
}

// expiryCollector reports ca_a2a_certificate_expiry_timestamp_seconds for
// the certificates of the current bundle, read at each scrape.
type expiryCollector struct{ src certload.Source }

var expiryDesc = prometheus.NewDesc("ca_a2a_certificate_expiry_timestamp_seconds",
	"NotAfter of the serving certificate (cert=\"serving\") and of each trusted CA (cert=\"ca:<subject CN>#<serial>\"), in Unix seconds.",
	[]string{"cert"}, nil)

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range certificates(c.src.Bundle()) {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(e.notAfter.Unix()), e.label)
	}
}

// checkExpiry logs a warning for each certificate that expires within
// ExpiryWarning, at most once a day per certificate. Called with flushMu held.
func (a *Agent) checkExpiry(now time.Time) {
	if a.opts.Certificate == nil {
		return
	}
	for _, e := range certificates(a.opts.Certificate.Bundle()) {
		if e.notAfter.Sub(now) >= ExpiryWarning {
			continue
		}
		if last, ok := a.warned[e.label]; ok && now.Sub(last) < 24*time.Hour {
			continue
		}
		a.warned[e.label] = now
		a.log.Warn("certificate expires soon; re-issue and publish it (docs/operations.md, Certificate rotation)",
			"cert", e.label, "subject", e.cert.Subject.String(), "not_after", e.notAfter.UTC().Format(time.RFC3339),
			"expires_in_days", int(math.Floor(DaysLeft(e.notAfter, now))))
	}
}
