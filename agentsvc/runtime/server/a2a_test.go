package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// sendMsg is a message/send request whose one DataPart is data.
func sendMsg(id, data string) string {
	idPart := ""
	if id != "" {
		idPart = `,"id":` + id
	}
	return `{"jsonrpc":"2.0","method":"message/send"` + idPart + `,"params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"data","data":` + data + `}]}}}`
}

func getTask(id, taskID string, extra string) string {
	return `{"jsonrpc":"2.0","method":"tasks/get","id":` + id + `,"params":{"id":"` + taskID + `"` + extra + `}}`
}

// rpcAnswer is one JSON-RPC answer whose result, when there is one, is a
// Task.
type rpcAnswer struct {
	ID     json.RawMessage `json:"id"`
	Result *a2a.Task       `json:"result"`
	Error  *struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

func decodeAnswer(t *testing.T, body string) rpcAnswer {
	t.Helper()
	var a rpcAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return a
}

// taskError reads the JSON-RPC error a failed Task carries.
func taskError(t *testing.T, task *a2a.Task) (int, string) {
	t.Helper()
	if task.Status.State != a2a.TaskStateFailed || task.Status.Message == nil || len(task.Status.Message.Parts) != 1 {
		t.Fatalf("not a failed task: %+v", task)
	}
	e := task.Status.Message.Parts[0].(a2a.DataPart).Data["error"].(map[string]any)
	return int(e["code"].(float64)), e["message"].(string)
}

func TestMessageSend(t *testing.T) {
	f := start(t)
	tests := []struct {
		name, body string
		status     int
		state      a2a.TaskState // of a Task answer
		code       int           // of a JSON-RPC error, or of the failed Task
		want, not  string
	}{
		{"completed, result as the artifact's DataPart", sendMsg("1", `{"skill":"list_skills"}`), 200, a2a.TaskStateCompleted, 0, `"agent":"validator"`, ""},
		{"numbers reach the skill and come back exact", sendMsg("1", `{"skill":"echo","params":{"n":12345678901234567890}}`), 200, a2a.TaskStateCompleted, 0, `"n":12345678901234567890`, ""},
		{"the skill's params error is a failed task", sendMsg("1", `{"skill":"list_skills","params":{"x":1}}`), 200, a2a.TaskStateFailed, -32602, `"code":-32602`, ""},
		{"a panic is a failed task without details", sendMsg("1", `{"skill":"get_validation_rules"}`), 200, a2a.TaskStateFailed, -32603, `"message":"internal error"`, "boom"},
		{"forbidden skill: 403 before it runs", sendMsg("1", `{"skill":"broken"}`), 403, "", -32011, `may not call broken`, "hunter2"},
		{"unknown skill: -32601, not echoed", sendMsg("1", `{"skill":"drop_tables"}`), 200, "", -32601, `"skills":["broken","echo","get_health"`, "drop_tables"},
		{"the envelope is not a skill", sendMsg("1", `{"skill":"message/send"}`), 200, "", -32601, `skill not found`, ""},
		{"text only names the skills", `{"jsonrpc":"2.0","method":"message/send","id":1,"params":{"message":{"role":"user","parts":[{"kind":"text","text":"validate this"}]}}}`, 200, "", -32602,
			`skills: broken, echo, get_health, get_validation_rules, list_skills, validate_document`, ""},
		{"malformed A2A params", `{"jsonrpc":"2.0","method":"message/send","id":1,"params":{"message":7}}`, 200, "", -32602, `invalid params`, ""},
		{"a task cannot be continued", `{"jsonrpc":"2.0","method":"message/send","id":1,"params":{"message":{"role":"user","taskId":"x","parts":[{"kind":"data","data":{"skill":"echo"}}]}}}`, 200, "", -32602, `taskId`, ""},
		{"streaming is not offered", strings.Replace(sendMsg("1", `{"skill":"echo"}`), "message/send", "message/stream", 1), 200, "", -32601, `method not found`, ""},
		{"nor is cancelling", `{"jsonrpc":"2.0","method":"tasks/cancel","id":1,"params":{"id":"x"}}`, 200, "", -32601, `method not found`, ""},
		{"forbidden notification: nothing", sendMsg("", `{"skill":"broken"}`), 204, "", 0, "", ""},
		{"notification", sendMsg("", `{"skill":"echo"}`), 204, "", 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.post(t, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) || (tc.not != "" && strings.Contains(body, tc.not)) {
				t.Fatalf("%d %s\nwant %d, %s, not %q", status, body, tc.status, tc.want, tc.not)
			}
			if status == 204 {
				return
			}
			a := decodeAnswer(t, body)
			switch {
			case tc.state == "":
				if a.Error == nil || a.Error.Code != tc.code || a.Result != nil {
					t.Fatalf("want error %d: %s", tc.code, body)
				}
			case a.Result == nil || a.Result.Status.State != tc.state:
				t.Fatalf("want a %s task: %s", tc.state, body)
			case tc.state == a2a.TaskStateFailed:
				if code, _ := taskError(t, a.Result); code != tc.code {
					t.Fatalf("task carries %d, want %d", code, tc.code)
				}
			case len(a.Result.Artifacts) != 1 || len(a.Result.History) != 1:
				t.Fatalf("completed task: %s", body)
			}
		})
	}
	if n := server.KeptTasks(f.server); n != 4 {
		t.Errorf("%d tasks kept; want the 4 answered tasks, no notification's", n)
	}
}

// TestMessageSendBatch: each element is authorized by the skill inside it.
func TestMessageSendBatch(t *testing.T) {
	f := start(t)
	batch := "[" + strings.Join([]string{
		sendMsg("1", `{"skill":"echo","params":{"a":1}}`),
		sendMsg("2", `{"skill":"broken"}`),
		sendMsg("3", `{"skill":"nope"}`),
		sendMsg("", `{"skill":"broken"}`),
		`{"jsonrpc":"2.0","method":"list_skills","id":4}`,
	}, ",") + "]"
	status, body := f.post(t, batch)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var answers []rpcAnswer
	if err := json.Unmarshal([]byte(body), &answers); err != nil || len(answers) != 4 {
		t.Fatalf("%v: %s", err, body)
	}
	if a := answers[0]; string(a.ID) != "1" || a.Result == nil || a.Result.Status.State != a2a.TaskStateCompleted {
		t.Errorf("allowed element: %s", body)
	}
	if a := answers[1]; string(a.ID) != "2" || a.Error == nil || a.Error.Code != agentapi.CodeForbidden {
		t.Errorf("forbidden element: %s", body)
	}
	if a := answers[2]; string(a.ID) != "3" || a.Error == nil || a.Error.Code != -32601 {
		t.Errorf("unknown skill element: %s", body)
	}
	if a := answers[3]; string(a.ID) != "4" || a.Error != nil {
		t.Errorf("seed method element: %s", body)
	}
}

func TestTasksGet(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(&t0)
	f := start(t, func(o *server.Options) {
		o.Tasks = server.TaskLimits{TTL: time.Minute, Count: 3, Bytes: 64 << 10, Now: func() time.Time { return *now.Load() }}
	})
	create := func(t *testing.T, data string) *a2a.Task {
		t.Helper()
		_, body := f.post(t, sendMsg(`"c"`, data))
		a := decodeAnswer(t, body)
		if a.Result == nil {
			t.Fatalf("no task: %s", body)
		}
		return a.Result
	}
	get := func(t *testing.T, client *http.Client, token, taskID, extra string) rpcAnswer {
		t.Helper()
		status, body := f.postAs(t, client, token, getTask("9", taskID, extra))
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		return decodeAnswer(t, body)
	}
	notFound := func(t *testing.T, a rpcAnswer) {
		t.Helper()
		if a.Error == nil || a.Error.Code != -32001 || a.Error.Message != "task not found" || a.Result != nil {
			t.Fatalf("want -32001 task not found, got %+v %+v", a.Error, a.Result)
		}
	}
	archivist, archivistToken := f.caller(t, agentapi.Archivist)

	task := create(t, `{"skill":"echo","params":{"k":"v"}}`)
	t.Run("the creator gets the task", func(t *testing.T) {
		a := get(t, f.client, f.token, string(task.ID), "")
		if a.Result == nil || a.Result.ID != task.ID || a.Result.Status.State != a2a.TaskStateCompleted || len(a.Result.History) != 1 || len(a.Result.Artifacts) != 1 {
			t.Fatalf("%+v", a)
		}
		if a := get(t, f.client, f.token, string(task.ID), `,"historyLength":0`); a.Result == nil || len(a.Result.History) != 0 || len(a.Result.Artifacts) != 1 {
			t.Fatalf("historyLength 0: %+v", a.Result)
		}
		if a := get(t, f.client, f.token, string(task.ID), `,"historyLength":1`); a.Result == nil || len(a.Result.History) != 1 || a.Result.ID != task.ID {
			t.Fatalf("historyLength 1: %+v", a.Result)
		}
		if a := get(t, f.client, f.token, string(task.ID), ""); len(a.Result.History) != 1 {
			t.Fatal("historyLength changed the kept task")
		}
	})
	t.Run("another caller gets what an unknown id gets", func(t *testing.T) {
		notFound(t, get(t, archivist, archivistToken, string(task.ID), ""))
		notFound(t, get(t, f.client, f.token, "00000000-0000-4000-8000-000000000000", ""))
		// The archivist's own task is the archivist's only.
		_, body := f.postAs(t, archivist, archivistToken, sendMsg("1", `{"skill":"echo"}`))
		theirs := decodeAnswer(t, body).Result
		if a := get(t, archivist, archivistToken, string(theirs.ID), ""); a.Result == nil {
			t.Fatalf("archivist's own task: %+v", a.Error)
		}
		notFound(t, get(t, f.client, f.token, string(theirs.ID), ""))
	})
	t.Run("malformed params", func(t *testing.T) {
		for _, body := range []string{
			`{"jsonrpc":"2.0","method":"tasks/get","id":1}`,
			`{"jsonrpc":"2.0","method":"tasks/get","id":1,"params":{"id":"x","extra":1}}`,
			`{"jsonrpc":"2.0","method":"tasks/get","id":1,"params":{"id":7}}`,
		} {
			if _, got := f.post(t, body); !strings.Contains(got, `"code":-32602`) {
				t.Errorf("%s: %s", body, got)
			}
		}
	})
	t.Run("after the time bound", func(t *testing.T) {
		later := t0.Add(time.Minute)
		now.Store(&later)
		notFound(t, get(t, f.client, f.token, string(task.ID), ""))
	})
	t.Run("after the count bound, oldest first", func(t *testing.T) {
		var ids []a2a.TaskID
		for i := range 4 {
			ids = append(ids, create(t, fmt.Sprintf(`{"skill":"echo","params":{"i":%d}}`, i)).ID)
		}
		notFound(t, get(t, f.client, f.token, string(ids[0]), ""))
		for _, id := range ids[1:] {
			if a := get(t, f.client, f.token, string(id), ""); a.Result == nil {
				t.Fatalf("task %s: %+v", id, a.Error)
			}
		}
	})
	t.Run("a task over the byte bound is answered, not kept", func(t *testing.T) {
		big := create(t, `{"skill":"echo","params":{"blob":"`+strings.Repeat("x", 70<<10)+`"}}`)
		if big.Status.State != a2a.TaskStateCompleted {
			t.Fatalf("state %s", big.Status.State)
		}
		notFound(t, get(t, f.client, f.token, string(big.ID), ""))
	})
}

func TestAgentCard(t *testing.T) {
	f := start(t)
	var bodies []string
	for _, path := range []string{"/.well-known/agent-card.json", "/.well-known/agent.json"} {
		resp, err := f.client.Get(f.url + path) // no token
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		bodies = append(bodies, string(b))
	}
	if bodies[0] != bodies[1] {
		t.Fatal("agent.json is not the same card")
	}
	for _, want := range []string{
		`"url":"https://validator.ca-a2a.local:8003/message"`, `"protocolVersion":"0.3.0"`, `"preferredTransport":"JSONRPC"`,
		`"capabilities":{"streaming":false,"pushNotifications":false,"stateTransitionHistory":false}`,
		`"security":[{"mtls":[],"oauth2":[]}]`, `"mtls":{"type":"mutualTLS"`,
		`"oauth2":{"type":"oauth2"`, `"clientCredentials":{"scopes":{},"tokenUrl":"https://keycloak.ca-a2a.local:8443/realms/ca-a2a/protocol/openid-connect/token"}`,
		`"defaultInputModes":["application/json"]`,
	} {
		if !strings.Contains(bodies[0], want) {
			t.Errorf("card lacks %s:\n%s", want, bodies[0])
		}
	}
	// a2a-go reads it as a card.
	var card a2a.AgentCard
	if err := json.Unmarshal([]byte(bodies[0]), &card); err != nil {
		t.Fatal(err)
	}
	if _, ok := card.SecuritySchemes["mtls"].(a2a.MutualTLSSecurityScheme); !ok || card.Capabilities.Streaming || len(card.Skills) != 6 {
		t.Fatalf("card as a2a-go reads it: %+v", card)
	}
	var ours server.AgentCard
	if err := json.Unmarshal([]byte(bodies[0]), &ours); err != nil {
		t.Fatal(err)
	}
	for _, sk := range ours.Skills {
		if sk.ID == "echo" && strings.Join(sk.AllowedCallers, ",") != "orchestrator,archivist" {
			t.Fatalf("echo's callers %v", sk.AllowedCallers)
		}
	}
}

// TestAccessLogNamesTheSkill: the access line of a message/send carries the
// skill it ran next to the method.
func TestAccessLogNamesTheSkill(t *testing.T) {
	buf := &syncbuf.Buffer{}
	f := start(t, func(o *server.Options) { o.Logger = slog.New(slog.NewJSONHandler(buf, nil)) })
	f.post(t, sendMsg("1", `{"skill":"echo"}`))
	f.post(t, sendMsg("2", `{"skill":"broken"}`))
	log := buf.String()
	for _, want := range []string{
		`"method":"message/send","code":0,`, `"skill":"echo"`,
		`"status":403,"caller":"orchestrator","method":"message/send","code":-32011`, `"skill":"broken"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
}

// TestTaskStoreHeap: the tasks kept for tasks/get take about their
// encoded size in memory (the bound the store counts), not the many times
// larger tree a decoded result would be. The result here is the worst
// case for decoding: many small objects.
func TestTaskStoreHeap(t *testing.T) {
	const tasks = 8
	f := start(t, func(o *server.Options) { o.Tasks = server.TaskLimits{Count: tasks, Bytes: 256 << 20} })
	var rows strings.Builder
	for i := range 12000 { // ~240 KiB of {"a":N,"b":"x"}
		if i > 0 {
			rows.WriteByte(',')
		}
		fmt.Fprintf(&rows, `{"a":%d,"b":"x"}`, i)
	}
	body := sendMsg(`"c"`, `{"skill":"echo","params":{"rows":[`+rows.String()+`]}}`)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	f.post(t, body) // connections, pools and buffers warmed up, then dropped by the count bound
	before := heap()
	var ids []string
	var encoded int
	for range tasks {
		status, answer := f.post(t, body)
		var a struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal([]byte(answer), &a); status != 200 || err != nil || !strings.Contains(string(a.Result), `"state":"completed"`) {
			t.Fatalf("%d %.200s", status, answer)
		}
		var task struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(a.Result, &task)
		ids = append(ids, task.ID)
		encoded += len(a.Result)
	}
	grown := int64(heap()) - int64(before)
	t.Logf("%d tasks, %d bytes encoded, heap grew by %d bytes", tasks, encoded, grown)
	// Each task's encoding, kept, and room for the noise of the test
	// itself; a decoded result alone would take ~10 times the encoding.
	if limit := int64(encoded)*2 + 16<<20; grown > limit {
		t.Errorf("the kept tasks take %d bytes of heap for %d encoded; want at most %d", grown, encoded, limit)
	}
	for _, id := range []string{ids[0], ids[tasks-1]} { // all still kept
		if _, got := f.post(t, getTask("9", id, "")); !strings.Contains(got, `"rows":[{"a":0,"b":"x"}`) {
			t.Fatalf("task %s: %.200s", id, got)
		}
	}
}
