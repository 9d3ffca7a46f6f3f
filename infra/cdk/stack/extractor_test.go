package stack_test

import (
	"fmt"
	"maps"
	"strconv"
	"testing"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

// TestExtractorTaskHoldsEveryWorker checks the extractor's sandbox settings
// reach its environment and its task has memory for EXTRACT_WORKERS parses
// at EXTRACT_MEMORY_LIMIT each plus the agent, in a size Fargate accepts.
func TestExtractorTaskHoldsEveryWorker(t *testing.T) {
	need := stack.ExtractWorkers*stack.ExtractMemoryLimitMiB + stack.ExtractorAgentBudgetMiB
	mem := stack.ExtractorMemoryMiB()
	if mem < need {
		t.Errorf("extractor memory %d MiB < %d workers x %d MiB + %d MiB agent", mem, stack.ExtractWorkers, stack.ExtractMemoryLimitMiB, stack.ExtractorAgentBudgetMiB)
	}
	if ok, err := stack.FargateMemoryMiB(stack.ExtractorCPU, mem); err != nil || ok != mem {
		t.Errorf("%d CPU / %d MiB is not a Fargate size (%d, %v)", stack.ExtractorCPU, mem, ok, err)
	}

	s := synth(t, nil)
	_, td := s.appT.byPath(t, "CaA2a/ExtractorTask/Resource")
	if td.Properties["Cpu"] != strconv.Itoa(stack.ExtractorCPU) || td.Properties["Memory"] != strconv.Itoa(mem) {
		t.Errorf("extractor task = %v CPU / %v MiB, want %d / %d", td.Properties["Cpu"], td.Properties["Memory"], stack.ExtractorCPU, mem)
	}
	if td.Properties["Cpu"] != "1024" || td.Properties["Memory"] != "2048" {
		t.Errorf("extractor task = %v / %v, want 1 vCPU / 2048 MiB for 4 x 256 MiB + 512 MiB", td.Properties["Cpu"], td.Properties["Memory"])
	}
	env := envOf(container(t, td))
	got := map[string]any{}
	for k := range stack.ExtractorEnvironment() {
		got[k] = env[k]
	}
	want := map[string]any{"EXTRACT_WORKERS": "4", "EXTRACT_MEMORY_LIMIT": "256MiB", "EXTRACT_TIMEOUT": "20s", "EXTRACT_MAX_BYTES": "20MiB"}
	if !maps.Equal(got, want) {
		t.Errorf("extractor sandbox environment = %v, want %v", got, want)
	}
	// The other agents keep the smallest size.
	for _, name := range []string{"Orchestrator", "Validator", "Archivist"} {
		_, td := s.appT.byPath(t, "CaA2a/"+name+"Task/Resource")
		if td.Properties["Cpu"] != "256" || td.Properties["Memory"] != "512" {
			t.Errorf("%s task = %v / %v", name, td.Properties["Cpu"], td.Properties["Memory"])
		}
	}
}

func TestFargateMemoryMiB(t *testing.T) {
	for _, tc := range []struct {
		cpu, need, want int
		err             bool
	}{
		{256, 1, 512, false},
		{256, 1025, 2048, false}, // 1536 is not offered with 0.25 vCPU
		{256, 2049, 0, true},
		{512, 1024, 1024, false},
		{1024, 1536, 2048, false},
		{1024, 2049, 3072, false},
		{1024, 8192, 8192, false},
		{1024, 8193, 0, true},
		{2048, 4097, 5120, false},
		{8192, 16385, 20480, false},
		{300, 512, 0, true},
	} {
		t.Run(fmt.Sprintf("%d-%d", tc.cpu, tc.need), func(t *testing.T) {
			got, err := stack.FargateMemoryMiB(tc.cpu, tc.need)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("FargateMemoryMiB(%d, %d) = %d, %v; want %d, error %v", tc.cpu, tc.need, got, err, tc.want, tc.err)
			}
		})
	}
}
