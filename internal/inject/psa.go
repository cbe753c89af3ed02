package inject

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

var (
	evaluatorOnce sync.Once
	evaluator     policy.Evaluator
	evaluatorErr  error
)

func podSecurityEvaluator() (policy.Evaluator, error) {
	evaluatorOnce.Do(func() {
		evaluator, evaluatorErr = policy.NewEvaluator(policy.DefaultChecks(), nil)
	})
	return evaluator, evaluatorErr
}

// Admissible reports why pod would be rejected by Pod Security admission at
// lv, or "" when it would be admitted. It uses the upstream Pod Security
// Admission library, the code the API server runs.
func Admissible(pod *corev1.Pod, lv psaapi.LevelVersion) string {
	return admissible(pod, lv)
}

func admissible(pod *corev1.Pod, lv psaapi.LevelVersion) string {
	ev, err := podSecurityEvaluator()
	if err != nil {
		return "pod security evaluator: " + err.Error()
	}
	agg := policy.AggregateCheckResults(ev.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec))
	if agg.Allowed {
		return ""
	}
	return agg.ForbiddenReason() + ": " + agg.ForbiddenDetail()
}
