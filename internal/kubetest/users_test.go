package kubetest

import (
	"path/filepath"
	"slices"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserConfig and WriteKubeconfig authenticate as the user they name: a
// static user with its groups, or an impersonated one.
func TestUsers(t *testing.T) {
	c := needCluster(t)
	for _, tc := range []struct {
		user       string
		groups     []string
		wantGroups []string
	}{
		{user: "alice", wantGroups: []string{"oncall", "system:authenticated"}},
		{user: "bob", wantGroups: []string{"system:authenticated"}},
		{user: "carol", groups: []string{"sre"}, wantGroups: []string{"sre", "system:authenticated"}},
	} {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := c.WriteKubeconfig(path, "default", tc.user, tc.groups...); err != nil {
			t.Fatal(err)
		}
		fromFile, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		for how, cfg := range map[string]*rest.Config{"UserConfig": c.UserConfig(tc.user, tc.groups...), "kubeconfig": fromFile} {
			t.Run(tc.user+"/"+how, func(t *testing.T) {
				client, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					t.Fatal(err)
				}
				r, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx(t), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got := r.Status.UserInfo
				slices.Sort(got.Groups)
				if got.Username != tc.user || !slices.Equal(got.Groups, tc.wantGroups) {
					t.Errorf("authenticated as %q in %v, want %q in %v", got.Username, got.Groups, tc.user, tc.wantGroups)
				}
			})
		}
	}
}
