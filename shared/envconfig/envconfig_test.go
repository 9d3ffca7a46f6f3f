package envconfig_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/envconfig"
)

func reader(kv map[string]string) *envconfig.Reader {
	return envconfig.New(func(k string) string { return kv[k] }, "test")
}

func TestGetters(t *testing.T) {
	r := reader(map[string]string{"S": "  v  ", "B": "false", "I": "12", "U": "https://idp.example:8443/realms/x", "P": " pem\n", "D": " 90s ",
		"M": "256MiB", "G": " 1GiB ", "N": "4096", "K": "3 KiB"})
	if got := r.String("S", "d"); got != "v" {
		t.Errorf("String = %q", got)
	}
	if got := r.String("UNSET", "d"); got != "d" {
		t.Errorf("String default = %q", got)
	}
	if r.Bool("B", true) || !r.Bool("UNSET", true) {
		t.Error("Bool")
	}
	if r.Int("I", 1, 1, 256) != 12 || r.Int("UNSET", 8, 1, 256) != 8 {
		t.Error("Int")
	}
	if r.Duration("D", time.Minute, time.Second, time.Hour) != 90*time.Second || r.Duration("UNSET", time.Minute, time.Second, time.Hour) != time.Minute {
		t.Error("Duration")
	}
	if u := r.HTTPSURL("U", r.String("U", "")); u == nil || u.Hostname() != "idp.example" {
		t.Errorf("HTTPSURL = %v", u)
	}
	if r.Bytes("M", 1, 0, 1<<40) != 256<<20 || r.Bytes("G", 1, 0, 1<<40) != 1<<30 || r.Bytes("N", 1, 0, 1<<40) != 4096 ||
		r.Bytes("K", 1, 0, 1<<40) != 3<<10 || r.Bytes("UNSET", 7, 0, 1<<40) != 7 {
		t.Error("Bytes")
	}
	if got := r.Raw("P"); got != " pem\n" {
		t.Errorf("Raw = %q", got)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	r := reader(map[string]string{"B": "yes please", "I": "0", "J": "x", "U": "http://idp/x", "V": "https://", "D": "10", "E": "2h",
		"M": "256MB", "N": "64MiB", "O": "-1", "Q": "99999999999GiB"})
	for _, name := range []string{"M", "N", "O", "Q"} {
		r.Bytes(name, 256<<20, 128<<20, 1<<30)
	}
	r.Bool("B", true)
	r.Int("I", 8, 1, 256)
	r.Int("J", 8, 1, 256)
	r.HTTPSURL("U", "http://idp/x", "verified against the CA")
	r.HTTPSURL("V", "https://")
	r.HTTPSURL("W", "")
	r.Duration("D", time.Minute, time.Second, time.Hour)
	r.Duration("E", time.Minute, time.Second, time.Hour)
	r.Failf("%s is %s", "X", "wrong")
	err := r.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`test: B must be true or false, got "yes please"`,
		`test: I must be 1..256, got "0"`,
		`test: J must be 1..256, got "x"`,
		`test: U must be an https URL (verified against the CA), got "http://idp/x"`,
		`test: V must be an https URL, got "https://"`,
		`test: W must be an https URL, got ""`,
		`test: D must be a duration from 1s to 1h0m0s (such as 1m0s), got "10"`,
		`test: E must be a duration from 1s to 1h0m0s (such as 1m0s), got "2h"`,
		`test: X is wrong`,
		`test: M must be a size from 128MiB to 1GiB (such as 256MiB), got "256MB"`,
		`test: N must be a size from 128MiB to 1GiB`,
		`test: O must be a size`,
		`test: Q must be a size`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}
