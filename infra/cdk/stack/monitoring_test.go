package stack_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

// alarmWant is what one alarm must be.
type alarmWant struct {
	namespace, metric, statistic, comparison, missing string
	dims                                              map[string]string
	period, threshold                                 float64
}

// wantAlarms lists every alarm of the stack by name for thresholds auth
// (any-reason refusals) and internal (internal errors); fn and dlq are the
// logical ids of the function and the DLQ.
func wantAlarms(auth, internal float64, fn, dlq string) map[string]alarmWant {
	const gte, lt = "GreaterThanOrEqualToThreshold", "LessThanThreshold"
	want := map[string]alarmWant{
		"ca-a2a-lambda-errors": {"AWS/Lambda", "Errors", "Sum", gte, "notBreaching", map[string]string{"FunctionName": "${" + fn + "}"}, 300, 1},
		"ca-a2a-documents-dlq-depth": {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", gte, "notBreaching",
			map[string]string{"QueueName": "${" + dlq + ".QueueName}"}, 60, 1},
	}
	for _, ag := range stack.Agents {
		a := map[string]string{"Agent": ag.Name}
		want["ca-a2a-"+ag.Name+"-binding-mismatch"] = alarmWant{"CaA2a", "AuthRefusals", "Sum", gte, "notBreaching",
			map[string]string{"Agent": ag.Name, "Reason": "binding_mismatch"}, 300, 1}
		want["ca-a2a-"+ag.Name+"-auth-refusals"] = alarmWant{"CaA2a", "AuthRefusals", "Sum", gte, "notBreaching", a, 300, auth}
		want["ca-a2a-"+ag.Name+"-internal-errors"] = alarmWant{"CaA2a", "InternalErrors", "Sum", gte, "notBreaching", a, 300, internal}
		want["ca-a2a-"+ag.Name+"-certificate-expiry"] = alarmWant{"CaA2a", "CertificateDaysToExpiry", "Minimum", lt, "ignore", a, 3600, 30}
	}
	return want
}

// checkAlarms compares every AWS::CloudWatch::Alarm of s with want, and
// checks each notifies the alarm topic and nothing else.
func checkAlarms(t *testing.T, s *synthesized, want map[string]alarmWant) {
	t.Helper()
	tp := s.appT
	topic, _ := tp.byPath(t, "CaA2a/AlarmTopic/Resource")
	seen := map[string]bool{}
	for _, id := range tp.ofType("AWS::CloudWatch::Alarm") {
		p := tp.Resources[id].Properties
		name, _ := p["AlarmName"].(string)
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected alarm %s (%s)", name, id)
			continue
		}
		seen[name] = true
		dims := map[string]string{}
		for _, d := range list(p["Dimensions"]) {
			m := d.(map[string]any)
			dims[m["Name"].(string)] = render(t, m["Value"])
		}
		got := alarmWant{
			namespace: fmt.Sprint(p["Namespace"]), metric: fmt.Sprint(p["MetricName"]), statistic: fmt.Sprint(p["Statistic"]),
			comparison: fmt.Sprint(p["ComparisonOperator"]), missing: fmt.Sprint(p["TreatMissingData"]), dims: dims,
		}
		got.period, _ = p["Period"].(float64)
		got.threshold, _ = p["Threshold"].(float64)
		if got.namespace != w.namespace || got.metric != w.metric || got.statistic != w.statistic || got.comparison != w.comparison ||
			got.missing != w.missing || got.period != w.period || got.threshold != w.threshold || !maps.Equal(got.dims, w.dims) {
			t.Errorf("alarm %s:\n got %+v\nwant %+v", name, got, w)
		}
		if p["EvaluationPeriods"] != float64(1) || p["ActionsEnabled"] == false {
			t.Errorf("alarm %s: evaluation periods %v, actions enabled %v", name, p["EvaluationPeriods"], p["ActionsEnabled"])
		}
		if acts := list(p["AlarmActions"]); len(acts) != 1 || ref(acts[0]) != topic {
			t.Errorf("alarm %s: actions %v, want the alarm topic %s", name, acts, topic)
		}
		if d, _ := p["AlarmDescription"].(string); len(d) < 40 {
			t.Errorf("alarm %s: description %q does not tell the operator what to do", name, d)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("alarm %s missing", name)
		}
	}
}

func TestAlarms(t *testing.T) {
	s := synth(t, nil)
	fn, _ := s.appT.byPath(t, "CaA2a/DocumentsFunction/Resource")
	dlq, _ := s.appT.byPath(t, "CaA2a/DocumentsDlq/Resource")
	want := wantAlarms(stack.DefaultAuthRefusalsThreshold, stack.DefaultInternalErrorsThreshold, fn, dlq)
	if len(want) != 4*len(stack.Agents)+2 {
		t.Fatalf("%d alarms expected", len(want))
	}
	checkAlarms(t, s, want)
}

func TestAlarmThresholdsAreContextValues(t *testing.T) {
	s := synth(t, map[string]any{"authRefusalsThreshold": "25", "internalErrorsThreshold": 3})
	fn, _ := s.appT.byPath(t, "CaA2a/DocumentsFunction/Resource")
	dlq, _ := s.appT.byPath(t, "CaA2a/DocumentsDlq/Resource")
	checkAlarms(t, s, wantAlarms(25, 3, fn, dlq))
}

// TestAlarmTopic checks the one topic: encrypted with a customer key that
// CloudWatch may use, TLS only, publishable by this account's CloudWatch
// alarms, and an e-mail subscription only when alarmEmail is set.
func TestAlarmTopic(t *testing.T) {
	s := synth(t, nil)
	tp := s.appT
	s.app.ResourceCountIs(jsii.String("AWS::SNS::Topic"), jsii.Number(1))
	topic, tr := tp.byPath(t, "CaA2a/AlarmTopic/Resource")
	key, kr := tp.byPath(t, "CaA2a/AlarmsKey/Resource")
	if tr.Properties["TopicName"] != stack.AlarmTopicName || ref(tr.Properties["KmsMasterKeyId"]) != key {
		t.Errorf("topic = %v", tr.Properties)
	}
	if kr.Properties["EnableKeyRotation"] != true {
		t.Error("alarm key without rotation")
	}
	cw := false
	for _, st := range list(kr.Properties["KeyPolicy"].(map[string]any)["Statement"]) {
		m := st.(map[string]any)
		if fmt.Sprint(m["Principal"]) == "map[Service:cloudwatch.amazonaws.com]" {
			cw = true
			if a := fmt.Sprint(list(m["Action"])); a != "[kms:Decrypt kms:GenerateDataKey]" {
				t.Errorf("CloudWatch may %s on the alarm key", a)
			}
		}
	}
	if !cw {
		t.Error("the alarm key does not let CloudWatch encrypt notifications")
	}
	var deny, allow bool
	for _, id := range tp.ofType("AWS::SNS::TopicPolicy") {
		p := tp.Resources[id].Properties
		if len(list(p["Topics"])) != 1 || ref(list(p["Topics"])[0]) != topic {
			continue
		}
		for _, st := range list(p["PolicyDocument"].(map[string]any)["Statement"]) {
			m := st.(map[string]any)
			switch {
			case m["Effect"] == "Deny" && fmt.Sprint(m["Condition"]) == "map[Bool:map[aws:SecureTransport:false]]" && m["Principal"] == "*":
				deny = true
			case m["Effect"] == "Allow":
				cond := m["Condition"].(map[string]any)
				src := render(t, cond["ArnLike"].(map[string]any)["aws:SourceArn"])
				if fmt.Sprint(m["Principal"]) != "map[Service:cloudwatch.amazonaws.com]" || m["Action"] != "sns:Publish" ||
					src != "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*" ||
					render(t, cond["StringEquals"].(map[string]any)["aws:SourceAccount"]) != "${AWS::AccountId}" {
					t.Errorf("topic policy allows %v", m)
				}
				allow = true
			}
		}
	}
	if !deny || !allow {
		t.Errorf("topic policy: TLS-only deny %v, CloudWatch publish %v", deny, allow)
	}
	s.app.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(0))

	s = synth(t, map[string]any{"alarmEmail": "ops@example.com"})
	topic, _ = s.appT.byPath(t, "CaA2a/AlarmTopic/Resource")
	s.app.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(1))
	s.app.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
		"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": map[string]any{"Ref": topic},
	})
}

// dashboardMetrics returns the dashboard's widgets as title -> the metrics
// each shows, as strings: "CaA2a/Requests Agent=orchestrator Sum" for a
// metric, "SEARCH(...)" for an expression; and the number of alarms in
// alarm widgets.
func dashboardMetrics(t *testing.T, s *synthesized) (map[string][]string, int) {
	t.Helper()
	ids := s.appT.ofType("AWS::CloudWatch::Dashboard")
	if len(ids) != 1 {
		t.Fatalf("%d dashboards, want 1", len(ids))
	}
	p := s.appT.Resources[ids[0]].Properties
	if p["DashboardName"] != stack.DashboardName {
		t.Errorf("dashboard name = %v", p["DashboardName"])
	}
	var body struct {
		Widgets []struct {
			Type       string `json:"type"`
			Properties struct {
				Title   string  `json:"title"`
				Metrics [][]any `json:"metrics"`
				Alarms  []any   `json:"alarms"`
			} `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(render(t, p["DashboardBody"])), &body); err != nil {
		t.Fatalf("dashboard body is not JSON: %v", err)
	}
	out := map[string][]string{}
	alarms := 0
	for _, w := range body.Widgets {
		alarms += len(w.Properties.Alarms)
		for _, m := range w.Properties.Metrics {
			opts, _ := m[len(m)-1].(map[string]any)
			if e, ok := opts["expression"].(string); ok {
				out[w.Properties.Title] = append(out[w.Properties.Title], e)
				continue
			}
			if len(m) < 3 {
				t.Fatalf("widget %q: metric %v", w.Properties.Title, m)
			}
			end := len(m)
			if opts != nil {
				end--
			}
			var dims []string
			for i := 2; i+1 < end; i += 2 {
				dims = append(dims, fmt.Sprintf("%v=%v", m[i], m[i+1]))
			}
			stat, _ := opts["stat"].(string)
			out[w.Properties.Title] = append(out[w.Properties.Title], fmt.Sprintf("%v/%v %s %s", m[0], m[1], strings.Join(dims, " "), stat))
		}
	}
	return out, alarms
}

func TestDashboard(t *testing.T) {
	s := synth(t, nil)
	widgets, alarms := dashboardMetrics(t, s)
	all := map[string]bool{}
	for _, ms := range widgets {
		for _, m := range ms {
			all[m] = true
		}
	}
	var want []string
	for _, ag := range stack.Agents {
		want = append(want,
			"CaA2a/Requests Agent="+ag.Name+" Sum",
			"CaA2a/AuthRefusals Agent="+ag.Name+" Sum",
			"CaA2a/InternalErrors Agent="+ag.Name+" Sum",
			"CaA2a/CertificateDaysToExpiry Agent="+ag.Name+" Minimum",
			// Refusals by reason: every Reason value of this agent.
			`SEARCH('{CaA2a,Agent,Reason} MetricName="AuthRefusals" Agent="`+ag.Name+`"', 'Sum', 300)`,
		)
	}
	want = append(want,
		"CaA2a/Latency Agent=orchestrator Method=process_document p50",
		"CaA2a/Latency Agent=orchestrator Method=process_document p99",
		`SEARCH('{CaA2a,Agent,Method} MetricName="Latency"', 'p50', 300)`,
		`SEARCH('{CaA2a,Agent,Method} MetricName="Latency"', 'p99', 300)`,
		"CaA2a/DocumentsProcessed Agent=lambda Sum",
		"CaA2a/DocumentsFailed Agent=lambda Sum",
		"CaA2a/DocumentsRetried Agent=lambda Sum",
	)
	for _, w := range want {
		if !all[w] {
			t.Errorf("dashboard lacks %s", w)
		}
	}
	if t.Failed() {
		keys := slices.Sorted(maps.Keys(all))
		t.Logf("dashboard metrics:\n%s", strings.Join(keys, "\n"))
	}
	if n := len(s.appT.ofType("AWS::CloudWatch::Alarm")); alarms != n {
		t.Errorf("alarm widget shows %d alarms, the stack has %d", alarms, n)
	}
}
