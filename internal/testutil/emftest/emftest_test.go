package emftest

import (
	"strings"
	"testing"
)

// TestCheckRefuses: the checker the other tests rely on refuses each way a
// line can break the specification.
func TestCheckRefuses(t *testing.T) {
	good := `{"Agent":"a","Requests":1,"_aws":{"Timestamp":1795593862000,"CloudWatchMetrics":[{"Namespace":"CaA2a","Dimensions":[["Agent"]],"Metrics":[{"Name":"Requests","Unit":"Count"}]}]}}`
	if _, err := Check([]byte(good)); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ old, new, want string }{
		"no _aws":                {`"_aws"`, `"aws"`, "no _aws"},
		"no timestamp":           {`"Timestamp":1795593862000,`, ``, "Timestamp missing"},
		"seconds timestamp":      {`1795593862000`, `1795593862`, "milliseconds"},
		"no directive":           {`[{"Namespace":"CaA2a","Dimensions":[["Agent"]],"Metrics":[{"Name":"Requests","Unit":"Count"}]}]`, `[]`, "empty"},
		"no namespace":           {`"Namespace":"CaA2a",`, ``, "no Namespace"},
		"no dimensions":          {`"Dimensions":[["Agent"]],`, ``, "no Dimensions"},
		"dimension not a member": {`"Agent":"a",`, ``, "not a top-level string"},
		"no metric":              {`[{"Name":"Requests","Unit":"Count"}]`, `[]`, "0 metrics"},
		"metric without member":  {`"Requests":1,`, ``, "no top-level member"},
		"metric not a number":    {`"Requests":1`, `"Requests":"1"`, "neither a number"},
		"empty value array":      {`"Requests":1`, `"Requests":[]`, "0 values"},
		"unknown unit":           {`"Unit":"Count"`, `"Unit":"Things"`, "unit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			line := strings.Replace(good, tc.old, tc.new, 1)
			if line == good {
				t.Fatalf("the case changes nothing")
			}
			if _, err := Check([]byte(line)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q\n%s", err, tc.want, line)
			}
		})
	}
}
