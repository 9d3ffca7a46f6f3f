package jsonrpc_test

import (
	"encoding/json"
	"testing"

	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// TestMarshalKeepsSizes: '<', '>' and '&' stay one byte, in values and in
// raw messages passed through, so a result is as large as its producer
// counted; everything else is encoding/json's.
func TestMarshalKeepsSizes(t *testing.T) {
	v := map[string]any{"text": "<a href=x&y>", "raw": json.RawMessage(`{"t": "<&>"}`), "ctl": "\x01\u2028"}
	got, err := jsonrpc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ctl":"\u0001\u2028","raw":{"t":"<&>"},"text":"<a href=x&y>"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, err := jsonrpc.Marshal(json.RawMessage(`{"broken"`)); err == nil {
		t.Fatal("an invalid raw message encoded")
	}
}
