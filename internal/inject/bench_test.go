package inject

import "testing"

// BenchmarkReview measures one AdmissionReview, decoding to patch.
func BenchmarkReview(b *testing.B) {
	cfg := testConfig()
	review := readReview(b, "run_as_user")
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := Review(review.Request, nsRestricted, cfg)
		if resp.Patch == nil {
			b.Fatal("no patch")
		}
	}
}
