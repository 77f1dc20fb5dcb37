// kubeconform, built from its Go module to validate examples/ with schemas/ in a test
// (hack/kubeconform/build.sh).
module netwarden.io/hack/kubeconform

go 1.25.0

tool github.com/yannh/kubeconform/cmd/kubeconform

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-retryablehttp v0.7.8 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.2 // indirect
	github.com/yannh/kubeconform v0.7.0 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	go.yaml.in/yaml/v3 v3.0.4 // indirect
	golang.org/x/text v0.37.0 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)
