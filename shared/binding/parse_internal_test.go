package binding

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// claimSeeds are claims as identity providers write them, and the ways
// they can differ from that: each must decode exactly as encoding/json
// decodes it.
var claimSeeds = []string{
	// The local identity provider and the test issuer.
	`{"aud":["ca-a2a-agents"],"azp":"lambda","client_id":"lambda","cnf":{"x5t#S256":"Qz5w8mX1a0s9dF2kLj3hG4pQz5w8mX1a0s9dF2kLj3h"},"exp":1780000000,"iat":1779999700,"iss":"https://keycloak.ca-a2a.local:8443/realms/ca-a2a","jti":"bench-1","sub":"service-account-lambda"}`,
	// Keycloak: nested objects and arrays, booleans, camelCase names.
	`{"exp":1780000000,"iat":1779999700,"jti":"8a1c","iss":"https://kc/realms/ca-a2a","aud":"ca-a2a-agents","sub":"5d1f","typ":"Bearer","azp":"lambda","acr":"1","allowed-origins":["/*"],"realm_access":{"roles":["default-roles-ca-a2a","offline_access"]},"resource_access":{"account":{"roles":["manage-account"]}},"scope":"profile email","clientHost":"10.0.0.1","email_verified":false,"preferred_username":"service-account-lambda","clientAddress":"10.0.0.1","client_id":"lambda","cnf":{"x5t#S256":"abc"},"n":-1.5e+3,"z":null}`,
	` { "exp" : 1 , "aud" : [ ] , "cnf" : { } } `,
	`{}`,
	`{"aud":"a"}`,
	`{"aud":["a","b"]}`,
	`{"aud":[]}`,
	`{"aud":null}`,
	`{"aud":[1]}`,
	`{"aud":5}`,
	`{"exp":0}`,
	`{"exp":1780000000.5}`,
	`{"exp":1.78e9}`,
	`{"exp":"1780000000"}`,
	`{"exp":-1}`,
	`{"exp":01}`,
	`{"exp":1234567890123456}`,
	`{"exp":null}`,
	`{"exp":true}`,
	`{"iss":"a","iss":"b"}`,
	`{"iss":"a","ISS":"b"}`,
	`{"Iss":"a"}`,
	`{"i\u0073s":"a"}`,
	`{"iss":"\u0061"}`,
	`{"iss":"é"}`,
	`{"iss":"a\"b"}`,
	`{"iss":null}`,
	`{"iss":1}`,
	`{"sub":"s","jti":"j","azp":"a","client_id":"c","scope":"x y"}`,
	`{"cnf":"x"}`,
	`{"cnf":null}`,
	`{"cnf":{"x5t#S256":"a","x5t#S256":"b"}}`,
	`{"cnf":{"X5T#s256":"a"}}`,
	`{"cnf":{"jkt":"k","x5t#S256":"a"}}`,
	`{"cnf":{"x5t#S256":1}}`,
	`{"cnf":[]}`,
	`{"cnf":{},"cnf":{"x5t#S256":"a"}}`,
	`{"other":{"deep":[[[[{"a":"\u00e9\n"}]]]]}}`,
	`{"other":"\ud800"}`,
	`{"other":"\x"}`,
	`{"other":tru}`,
	`{"other":1.}`,
	`{"other":-}`,
	`{"a":1,}`,
	`{"a":1}x`,
	`{"a" 1}`,
	`[]`,
	`null`,
	`"x"`,
	``,
	`{`,
	`{"RegisteredClaims":{"iss":"x"}}`,
	`{"CLIENT_ID":"x"}`,
	// cnf's member has an upper-case letter: its all-lower-case spelling
	// folds to it too, and the last of the two wins.
	`{"cnf":{"x5t#s256":"b"}}`,
	`{"cnf":{"x5t#S256":"a","x5t#s256":"b"}}`,
}

// FuzzClaimsDecode: whatever the fast path accepts decodes exactly as
// encoding/json decodes it, without an error; and UnmarshalJSON as a whole
// agrees with encoding/json on every input.
func FuzzClaimsDecode(f *testing.F) {
	for _, s := range claimSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want Claims
		wantErr := json.Unmarshal(b, (*plainClaims)(&want))
		var fast Claims
		if decodeClaims(b, &fast) {
			if wantErr != nil {
				t.Fatalf("fast path accepted %q, encoding/json refused it: %v", b, wantErr)
			}
			if !reflect.DeepEqual(fast, want) {
				t.Fatalf("fast path decoded %q as\n%+v\nencoding/json as\n%+v", b, fast, want)
			}
		}
		var got Claims
		gotErr := got.UnmarshalJSON(b)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("UnmarshalJSON(%q) = %+v, %v; encoding/json %+v, %v", b, got, gotErr, want, wantErr)
		}
	})
}

// TestClaimsFastPath: the shapes identity providers write take the fast
// path (else it would be dead code), the odd ones do not.
func TestClaimsFastPath(t *testing.T) {
	for i, s := range claimSeeds {
		var c Claims
		got := decodeClaims([]byte(s), &c)
		want := i < 7 || strings.HasPrefix(s, `{"sub":"s"`) || s == `{"exp":0}` || strings.HasPrefix(s, `{"cnf":{"jkt"`) ||
			strings.HasPrefix(s, `{"other":{"deep"`) || s == `{"other":"\ud800"}` || s == `{"RegisteredClaims":{"iss":"x"}}`
		if got != want {
			t.Errorf("fast path on %s: %v, want %v", s, got, want)
		}
	}
	// Decoding into claims already set goes to encoding/json, which merges.
	c := Claims{Scope: "kept"}
	if err := c.UnmarshalJSON([]byte(`{"iss":"x"}`)); err != nil || c.Scope != "kept" || c.Issuer != "x" {
		t.Fatalf("merge: %+v %v", c, err)
	}
}

// TestClaimNames keeps claimNames in step with the JSON names of Claims
// and its embedded RegisteredClaims: a claim added to the struct and not
// to the fast path would be skipped by it.
func TestClaimNames(t *testing.T) {
	var names []string
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			names = append(names, name)
		}
	}
	walk(reflect.TypeFor[Claims]())
	slices.Sort(names)
	known := slices.Clone(claimNames)
	slices.Sort(known)
	if !slices.Equal(names, known) {
		t.Fatalf("Claims has the JSON names %v, the fast path knows %v", names, known)
	}
	cnf := reflect.TypeFor[Cnf]()
	if cnf.NumField() != 1 || cnf.Field(0).Tag.Get("json") != cnfName {
		t.Fatalf("Cnf changed: the fast path reads only %q", cnfName)
	}
}

var headerSeeds = []string{
	`{"alg":"ES256","kid":"ec-1","typ":"JWT"}`,
	`{"alg":"RS256","typ":"JWT","kid":"Xr0bmcLLTbZ9lGvdxgfG5IB7sbJWbmwpSwF-SJL1fXs"}`,
	`{"alg":"ES256","kid":"k","jku":"https://evil"}`,
	`{"alg":"ES256","kid":"k","x5c":["a"],"jku":null}`,
	`{"alg":"ES256","kid":"k","crit":["exp"],"x5u":"u"}`,
	`{"alg":"ES256","kid":"k","crit":[]}`,
	`{"alg":"ES256","kid":"k","jwk":{"kty":"EC"}}`,
	`{"alg":"ES256"}`,
	`{"kid":"k"}`,
	`{"alg":null,"kid":"k"}`,
	`{"alg":1,"kid":"k"}`,
	`{"alg":"ES256","kid":7}`,
	`{"alg":"ES256","kid":""}`,
	`{"alg":"none","alg":"ES256","kid":"k"}`,
	`{"alg":"ES256","kid":"k","JKU":"x"}`,
	`{"alg":"ES256","kid":"k","j\u006bu":"x"}`,
	`{"alg":"E\u0053256","kid":"k"}`,
	`{"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"a10":10,"a11":11,"a12":12,"a13":13,"a14":14,"a15":15,"alg":"ES256","kid":"k"}`,
	`{}`,
	`null`,
	`[]`,
	`{`,
	`{"alg":"ES256",}`,
	``,
}

// FuzzHeaderDecode: the header's fast path reads what jwt's map decode
// reads.
func FuzzHeaderDecode(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]any
		mapErr := json.Unmarshal(b, &m)
		want := headerOf(m)
		fast, ok := decodeHeaderFast(b)
		if ok {
			if mapErr != nil {
				t.Fatalf("fast path accepted %q, encoding/json refused it: %v", b, mapErr)
			}
			if fast != want {
				t.Fatalf("header %q: fast %+v, map %+v", b, fast, want)
			}
		}
		got, err := decodeHeader(b)
		if (err == nil) != (mapErr == nil) || (err == nil && got != want) {
			t.Fatalf("decodeHeader(%q) = %+v, %v; map %+v, %v", b, got, err, want, mapErr)
		}
	})
}

func TestHeaderFastPath(t *testing.T) {
	for i, s := range headerSeeds {
		_, got := decodeHeaderFast([]byte(s))
		want := i <= 8 || i == 12 || i == 14 || s == `{}`
		if got != want {
			t.Errorf("fast path on %s: %v, want %v", s, got, want)
		}
	}
}
