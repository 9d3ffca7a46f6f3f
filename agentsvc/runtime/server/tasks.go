package server

import (
	"container/list"
	"sync"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
)

// Defaults of TaskLimits (docs/contract.md, A2A): tasks/get finds a task
// for 15 minutes at most, among the last 1000, within 64 MiB of encoded
// tasks.
const (
	DefaultTaskTTL   = 15 * time.Minute
	DefaultMaxTasks  = 1000
	DefaultTaskBytes = 64 << 20
)

// TaskLimits bound the finished tasks an agent keeps for tasks/get, so
// that memory stays bounded whatever callers send. A zero field takes its
// default.
type TaskLimits struct {
	// TTL is how long a task is kept after it finished.
	TTL time.Duration
	// Count bounds the tasks kept, over all callers; the oldest goes first.
	Count int
	// Bytes bounds the tasks kept by the size of their JSON encoding (a
	// task holds the caller's message and the result, up to megabytes),
	// which is what is kept: the bound is the memory the tasks take. The
	// oldest go first, and a task larger than the whole bound is not kept
	// at all.
	Bytes int64
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// taskStore holds finished tasks for tasks/get, each under the caller that
// created it: a task is found only by its creator, and a task id of
// another caller is answered exactly like an id that never existed.
type taskStore struct {
	limits TaskLimits

	mu    sync.Mutex
	byKey map[taskKey]*list.Element
	order list.List // of *heldTask, oldest first
	bytes int64
}

type taskKey struct {
	caller string
	id     a2a.TaskID
}

type heldTask struct {
	key     taskKey
	encoded []byte // the task's JSON encoding, as message/send answered it
	expires time.Time
}

func newTaskStore(l TaskLimits) *taskStore {
	if l.TTL <= 0 {
		l.TTL = DefaultTaskTTL
	}
	if l.Count <= 0 {
		l.Count = DefaultMaxTasks
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultTaskBytes
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return &taskStore{limits: l, byKey: map[taskKey]*list.Element{}}
}

// put keeps task id, encoded as its JSON encoding, for caller. encoded
// must not change afterwards: tasks/get hands it out as it is. It reports
// whether the task is kept.
func (s *taskStore) put(caller string, id a2a.TaskID, encoded []byte) bool {
	size := int64(len(encoded))
	if caller == "" || size > s.limits.Bytes {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.limits.Now()
	s.expireLocked(now)
	for s.order.Len() > 0 && (s.order.Len() >= s.limits.Count || s.bytes+size > s.limits.Bytes) {
		s.removeLocked(s.order.Front())
	}
	key := taskKey{caller: caller, id: id}
	if old, dup := s.byKey[key]; dup { // ids are random: only a bug gets here
		s.removeLocked(old)
	}
	s.byKey[key] = s.order.PushBack(&heldTask{key: key, encoded: encoded, expires: now.Add(s.limits.TTL)})
	s.bytes += size
	return true
}

// get returns the encoding of caller's task id, if it is still kept. The
// bytes are shared: they must not be changed.
func (s *taskStore) get(caller string, id a2a.TaskID) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.limits.Now())
	e, ok := s.byKey[taskKey{caller: caller, id: id}]
	if !ok {
		return nil, false
	}
	return e.Value.(*heldTask).encoded, true
}

// len returns how many tasks are kept and their size (tests).
func (s *taskStore) len() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len(), s.bytes
}

// expireLocked drops the tasks past their TTL: every task lives as long,
// so they are the oldest ones, at the front.
func (s *taskStore) expireLocked(now time.Time) {
	for e := s.order.Front(); e != nil && !now.Before(e.Value.(*heldTask).expires); e = s.order.Front() {
		s.removeLocked(e)
	}
}

func (s *taskStore) removeLocked(e *list.Element) {
	h := s.order.Remove(e).(*heldTask)
	delete(s.byKey, h.key)
	s.bytes -= int64(len(h.encoded))
}
