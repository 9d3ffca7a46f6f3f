package a2askill_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/google/uuid"

	"github.com/ca-a2a/ca-a2a/shared/a2askill"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// send wraps parts in message/send params as an A2A client writes them.
func send(parts string) string {
	return `{"message":{"kind":"message","messageId":"m1","role":"user","parts":[` + parts + `]}}`
}

func TestParseSend(t *testing.T) {
	tests := []struct {
		name, params string
		skill        string
		rawParams    string
		wantErr      string // substring of the -32602 message; "" for success
		noDataPart   bool
	}{
		{"skill and params", send(`{"kind":"data","data":{"skill":"process_document","params":{"s3_key":"a.pdf"}}}`), "process_document", `{"s3_key":"a.pdf"}`, "", false},
		{"text beside the data part", send(`{"kind":"text","text":"please"},{"kind":"data","data":{"skill":"list_skills"}}`), "list_skills", "", "", false},
		{"params null", send(`{"kind":"data","data":{"skill":"list_skills","params":null}}`), "list_skills", "", "", false},
		{"numbers kept exact", send(`{"kind":"data","data":{"skill":"s","params":{"n":12345678901234567890,"f":0.1000000000000000055511151231257827}}}`), "s",
			`{"n":12345678901234567890,"f":0.1000000000000000055511151231257827}`, "", false},
		{"extension members ignored", `{"message":{"kind":"message","messageId":"m","role":"user","extensions":["x"],"metadata":{"a":1},"parts":[{"kind":"data","data":{"skill":"s"}}],"future":1},"configuration":{"blocking":false}}`, "s", "", "", false},

		{"text only", send(`{"kind":"text","text":"process invoice.pdf"}`), "", "", "needs a DataPart", true},
		{"no parts", send(``), "", "", "needs a DataPart", true},
		{"two data parts", send(`{"kind":"data","data":{"skill":"a"}},{"kind":"data","data":{"skill":"b"}}`), "", "", "exactly one DataPart", false},
		{"file part", send(`{"kind":"data","data":{"skill":"a"}},{"kind":"file","file":{"uri":"s3://x/y"}}`), "", "", "file parts", false},
		{"unknown member in the data part", send(`{"kind":"data","data":{"skill":"a","Params":{}}}`), "", "", `only "skill" and "params"`, false},
		{"skill not a string", send(`{"kind":"data","data":{"skill":7}}`), "", "", `"skill" must be a method name`, false},
		{"skill empty", send(`{"kind":"data","data":{"skill":""}}`), "", "", `"skill" must be a method name`, false},
		{"skill too long", send(`{"kind":"data","data":{"skill":"` + strings.Repeat("a", 129) + `"}}`), "", "", `"skill" must be a method name`, false},
		{"params not an object", send(`{"kind":"data","data":{"skill":"a","params":[1]}}`), "", "", `"params" must be an object`, false},
		{"data not an object", send(`{"kind":"data","data":[1]}`), "", "", "invalid params", false},
		{"agent role", `{"message":{"messageId":"m","role":"agent","parts":[{"kind":"data","data":{"skill":"a"}}]}}`, "", "", `role must be "user"`, false},
		{"task to continue", `{"message":{"messageId":"m","role":"user","taskId":"0197","parts":[{"kind":"data","data":{"skill":"a"}}]}}`, "", "", "taskId is not accepted", false},
		{"push notifications", `{"message":{"messageId":"m","role":"user","parts":[{"kind":"data","data":{"skill":"a"}}]},"configuration":{"pushNotificationConfig":{"url":"https://x"}}}`, "", "", "push notifications", false},
		{"no message", `{}`, "", "", "message is required", false},
		{"absent params", ``, "", "", "params are required", false},
		{"null params", `null`, "", "", "params are required", false},
		{"not JSON", `{"message":`, "", "", "invalid params", false},
		{"trailing data", send(`{"kind":"data","data":{"skill":"a"}}`) + ` {}`, "", "", "trailing data", false},
		{"unknown part kind, not echoed", send(`{"kind":"SECRET-KIND","data":{}}`), "", "", "not A2A MessageSendParams", false},
		{"parts not an array", `{"message":{"role":"user","parts":{"kind":"data"}}}`, "", "", "invalid params", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			call, err := a2askill.ParseSend(json.RawMessage(tc.params))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseSend: %v", err)
				}
				if call.Skill != tc.skill || string(call.Params) != tc.rawParams || call.Message == nil {
					t.Fatalf("got skill %q params %s", call.Skill, call.Params)
				}
				return
			}
			var e *jsonrpc.Error
			if !errors.As(err, &e) || e.Code != jsonrpc.CodeInvalidParams || !strings.Contains(e.Message, tc.wantErr) {
				t.Fatalf("error %v, want -32602 with %q", err, tc.wantErr)
			}
			if strings.Contains(e.Message, "SECRET") {
				t.Fatalf("the message echoes the input: %q", e.Message)
			}
			if errors.Is(err, a2askill.ErrNoDataPart) != tc.noDataPart {
				t.Fatalf("errors.Is(ErrNoDataPart) = %v", !tc.noDataPart)
			}
		})
	}
}

// TestRoundTrip: what a client builds is what the server reads, and what
// the server answers is what the client reads, through JSON as on the wire
// and through a2a-go's own decoding of a Task.
func TestRoundTrip(t *testing.T) {
	type params struct {
		S3Key string `json:"s3_key"`
	}
	msg, err := a2askill.Message("process_document", params{S3Key: "incoming/a.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(a2a.MessageSendParams{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	call, err := a2askill.ParseSend(wire)
	if err != nil {
		t.Fatal(err)
	}
	if call.Skill != "process_document" || string(call.Params) != `{"s3_key":"incoming/a.pdf"}` {
		t.Fatalf("server read %q %s", call.Skill, call.Params)
	}

	completed, err := a2askill.Completed(call, json.RawMessage(`{"document_id":"doc-1","size":9007199254740993}`))
	if err != nil {
		t.Fatal(err)
	}
	failed := a2askill.Failed(call, &jsonrpc.Error{Code: -32001, Message: "document not found", Data: map[string]any{"s3_key": "x"}})
	for _, tk := range []*a2a.Task{completed, failed} {
		for _, id := range []string{string(tk.ID), tk.ContextID} {
			if u, err := uuid.Parse(id); err != nil || u.Version() != 4 {
				t.Fatalf("id %q is not a random UUID", id)
			}
		}
		if tk.Status.Timestamp == nil || len(tk.History) != 1 || tk.History[0] != call.Message {
			t.Fatalf("task %+v", tk)
		}
	}
	if completed.Status.State != a2a.TaskStateCompleted || failed.Status.State != a2a.TaskStateFailed {
		t.Fatal("states")
	}
	if failed.Status.Message.TaskID != failed.ID || failed.Status.Message.Role != a2a.MessageRoleAgent {
		t.Fatalf("failed status message %+v", failed.Status.Message)
	}
	raw, _ := json.Marshal(completed)
	if !strings.Contains(string(raw), `"size":9007199254740993`) || !strings.Contains(string(raw), `"kind":"task"`) {
		t.Fatalf("completed task on the wire: %s", raw)
	}

	decode := func(tk *a2a.Task) *a2a.Task {
		raw, err := json.Marshal(tk)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := a2a.UnmarshalEventJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		return ev.(*a2a.Task)
	}
	var res struct {
		DocumentID string `json:"document_id"`
	}
	if err := a2askill.Result(decode(completed), &res); err != nil || res.DocumentID != "doc-1" {
		t.Fatalf("Result(completed) = %v %+v", err, res)
	}
	err = a2askill.Result(decode(failed), &res)
	var e *jsonrpc.Error
	if !errors.As(err, &e) || e.Code != -32001 || e.Message != "document not found" || e.Data.(map[string]any)["s3_key"] != "x" {
		t.Fatalf("Result(failed) = %#v", err)
	}
	if err := a2askill.Result(&a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateWorking}}, nil); !errors.Is(err, a2askill.ErrNotFinished) {
		t.Fatalf("Result(working) = %v", err)
	}
	if err := a2askill.Result(&a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted}}, nil); !errors.Is(err, a2askill.ErrNoResult) {
		t.Fatalf("Result(no artifact) = %v", err)
	}
	if _, err := a2askill.Completed(call, json.RawMessage(`[1]`)); err == nil {
		t.Fatal("a result that is not an object was accepted")
	}
	if _, err := a2askill.Message("s", []int{1}); err == nil {
		t.Fatal("params that are not an object were accepted")
	}
}

// FuzzParseSend: whatever the bytes, ParseSend answers a -32602 or a call
// whose skill is a bounded name and whose params are a JSON object.
func FuzzParseSend(f *testing.F) {
	f.Add([]byte(send(`{"kind":"data","data":{"skill":"process_document","params":{"s3_key":"a.pdf"}}}`)))
	f.Add([]byte(send(`{"kind":"text","text":"hi"}`)))
	f.Add([]byte(send(`{"kind":"file","file":{"bytes":"AA=="}}`)))
	f.Add([]byte(`{"message":{"role":"user","taskId":"t","parts":[]},"configuration":{"blocking":true}}`))
	f.Add([]byte(`{"message":{"role":"user","parts":[{"kind":"data","data":{"skill":"a","params":{"a":[1,{"b":null}]}}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		call, err := a2askill.ParseSend(data)
		if err != nil {
			var e *jsonrpc.Error
			if !errors.As(err, &e) || e.Code != jsonrpc.CodeInvalidParams {
				t.Fatalf("error %v is not a -32602", err)
			}
			return
		}
		if call.Skill == "" || len(call.Skill) > 128 || call.Message == nil {
			t.Fatalf("call %+v", call)
		}
		if call.Params != nil {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(call.Params, &m); err != nil {
				t.Fatalf("params %q are not an object: %v", call.Params, err)
			}
		}
	})
}
