// Command kubecheck checks stratq's Kubernetes manifests for tests/deploy
// without a cluster and without kubectl.
//
//	kubecheck build DIR      print the kustomize build of DIR as YAML
//	kubecheck check FILE...  decode every YAML document of the files ("-" is
//	                         standard input) into its official Go type
//
// check decodes strictly: an unknown or misspelt field (names are
// case-sensitive), a duplicate key, a value of the wrong type, or an
// apiVersion and kind it has no type for is an error. The types are those of
// Kubernetes 1.26 (k8s.io/api), KEDA 2.9 (its own apis/keda/v1alpha1) and
// kustomize (Kustomization and Component). It prints a JSON array with one
// object per document:
//
//	{"file": "...", "index": 0, "apiVersion": "apps/v1", "kind": "Deployment",
//	 "name": "worker", "errors": ["unknown field \"spec.replica\""]}
//
// The exit status is 0 when every document decodes, 1 when one does not, and
// 2 for a usage error, an unreadable file or a failed build.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The API groups a manifest of this project may use: the stable built-in
// ones and KEDA's. Any other apiVersion and kind is reported as unknown.
var scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme,
		batchv1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme,
		rbacv1.AddToScheme, kedav1alpha1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

// kustomize's own files, which are not Kubernetes objects.
var kustomizeKinds = map[schema.GroupVersionKind]bool{
	{Group: "kustomize.config.k8s.io", Version: "v1beta1", Kind: types.KustomizationKind}: true,
	{Group: "kustomize.config.k8s.io", Version: "v1alpha1", Kind: types.ComponentKind}:    true,
}

// Result is what check reports for one document.
type Result struct {
	File       string   `json:"file"`
	Index      int      `json:"index"`
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	Errors     []string `json:"errors"`
}

func main() {
	if len(os.Args) < 3 || (os.Args[1] == "build" && len(os.Args) != 3) {
		usage()
	}
	switch os.Args[1] {
	case "build":
		if err := build(os.Args[2], os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: build %s: %v\n", os.Args[2], err)
			os.Exit(2)
		}
	case "check":
		os.Exit(checkFiles(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kubecheck build DIR\n       kubecheck check FILE...  (- for standard input)")
	os.Exit(2)
}

// build runs kustomize on dir as `kubectl kustomize dir` does: no plugins,
// no file outside dir's tree, objects in kustomize's legacy order (by kind,
// Namespaces first, then by name).
func build(dir string, out io.Writer) error {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return err
	}
	y, err := m.AsYaml()
	if err != nil {
		return err
	}
	_, err = out.Write(y)
	return err
}

func checkFiles(files []string) int {
	results := []Result{}
	for _, file := range files {
		r, err := checkFile(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %s: %v\n", file, err)
			return 2
		}
		results = append(results, r...)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
		return 2
	}
	for _, r := range results {
		if len(r.Errors) > 0 {
			return 1
		}
	}
	return 0
}

// checkFile decodes each document of a YAML stream. Documents that hold
// nothing but comments are skipped and not counted in Index.
func checkFile(file string) ([]Result, error) {
	in := os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var results []Result
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return results, nil
		}
		if err != nil {
			return nil, err
		}
		r := checkDocument(doc)
		if r == nil {
			continue
		}
		r.File, r.Index = file, len(results)
		results = append(results, *r)
	}
}

// checkDocument decodes one YAML document into the Go type of its apiVersion
// and kind; nil for an empty document.
func checkDocument(doc []byte) *Result {
	r := &Result{Errors: []string{}}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		return r
	}
	if string(js) == "null" {
		return nil
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &head); err != nil {
		r.Errors = append(r.Errors, "not a Kubernetes object (a mapping with apiVersion, kind and metadata)")
		return r
	}
	r.APIVersion, r.Kind, r.Name = head.APIVersion, head.Kind, head.Metadata.Name
	if _, err := yaml.YAMLToJSONStrict(doc); err != nil {
		r.Errors = append(r.Errors, err.Error()) // a duplicate key
	}
	obj, err := newObject(head.APIVersion, head.Kind)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		return r
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	for _, e := range strict {
		r.Errors = append(r.Errors, e.Error())
	}
	return r
}

// newObject returns a pointer to a new value of the Go type for apiVersion
// and kind: a Kubernetes or KEDA object, or kustomize's Kustomization.
func newObject(apiVersion, kind string) (interface{}, error) {
	if apiVersion == "" || kind == "" {
		return nil, errors.New("apiVersion and kind must be set")
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, err
	}
	gvk := gv.WithKind(kind)
	if kustomizeKinds[gvk] {
		return &types.Kustomization{}, nil
	}
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("unknown apiVersion and kind %s %s", apiVersion, kind)
	}
	// The scheme also holds lists and options (DeploymentList,
	// ListOptions...), which are not objects a manifest holds.
	if _, err := meta.Accessor(obj); err != nil {
		return nil, fmt.Errorf("%s %s is not an object with metadata", apiVersion, kind)
	}
	return obj, nil
}
