package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// serviceMonitor is the part of the prometheus-operator ServiceMonitor
// (monitoring.coreos.com/v1) that the chart may use. The operator's Go types
// would pull in controller-runtime; this subset is enough to reject fields
// the CRD does not have in the places the chart writes.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port              string           `json:"port,omitempty"`
			Path              string           `json:"path,omitempty"`
			Scheme            string           `json:"scheme,omitempty"`
			Interval          string           `json:"interval,omitempty"`
			ScrapeTimeout     string           `json:"scrapeTimeout,omitempty"`
			HonorLabels       bool             `json:"honorLabels,omitempty"`
			RelabelConfigs    []map[string]any `json:"relabelings,omitempty"`
			MetricRelabelings []map[string]any `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// validateManifests decodes every YAML document of data strictly (unknown
// fields are errors) into the Go type of its apiVersion and kind, from
// k8s.io/api, and then checks what the API server would refuse that types
// alone do not catch: names, labels, selectors, port and env names, probe
// ports.
func validateManifests(data []byte) (int, []string) {
	var errs []string
	n := 0
	for i, doc := range splitDocuments(data) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			errs = append(errs, fmt.Sprintf("document %d: %v", i, err))
			continue
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		n++
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			errs = append(errs, fmt.Sprintf("document %d: %v", i, err))
			continue
		}
		where := fmt.Sprintf("document %d (%s %s)", i, tm.APIVersion, tm.Kind)
		obj, ok := newObject(tm)
		if !ok {
			errs = append(errs, where+": no type known for this apiVersion and kind")
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		for _, p := range check(obj) {
			errs = append(errs, where+": "+p)
		}
	}
	return n, errs
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func splitDocuments(data []byte) [][]byte {
	parts := docSep.Split(string(data), -1)
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = []byte(p)
	}
	return out
}

func newObject(tm metav1.TypeMeta) (any, bool) {
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &serviceMonitor{}, true
	}
	return nil, false
}

func check(obj any) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	meta := func(m metav1.ObjectMeta) {
		for _, e := range validation.IsDNS1123Subdomain(m.Name) {
			add("metadata.name %q: %s", m.Name, e)
		}
		checkLabels("metadata.labels", m.Labels, add)
		for k := range m.Annotations {
			for _, e := range validation.IsQualifiedName(k) {
				add("metadata.annotations key %q: %s", k, e)
			}
		}
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		meta(o.ObjectMeta)
		for k := range o.Data {
			for _, e := range validation.IsConfigMapKey(k) {
				add("data key %q: %s", k, e)
			}
		}
	case *corev1.Secret:
		meta(o.ObjectMeta)
	case *corev1.ServiceAccount:
		meta(o.ObjectMeta)
	case *corev1.Service:
		meta(o.ObjectMeta)
		for _, e := range validation.IsDNS1035Label(o.Name) {
			add("Service name %q: %s", o.Name, e)
		}
		checkLabels("spec.selector", o.Spec.Selector, add)
		if len(o.Spec.Ports) == 0 {
			add("spec.ports is empty")
		}
		for _, sp := range o.Spec.Ports {
			checkPort(fmt.Sprintf("spec.ports[%s]", sp.Name), sp.Name, sp.Port, add)
		}
	case *appsv1.Deployment:
		meta(o.ObjectMeta)
		checkSelector("spec.selector", o.Spec.Selector, o.Spec.Template.Labels, add)
		checkPod(o.Spec.Template.Spec, add)
	case *policyv1.PodDisruptionBudget:
		meta(o.ObjectMeta)
		if o.Spec.Selector == nil {
			add("spec.selector is missing")
		}
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			add("exactly one of spec.minAvailable and spec.maxUnavailable must be set")
		}
	case *serviceMonitor:
		meta(o.ObjectMeta)
		if len(o.Spec.Endpoints) == 0 {
			add("spec.endpoints is empty")
		}
		if _, err := metav1.LabelSelectorAsSelector(&o.Spec.Selector); err != nil {
			add("spec.selector: %v", err)
		}
		for i, ep := range o.Spec.Endpoints {
			if ep.Port == "" {
				add("spec.endpoints[%d].port is empty", i)
			}
		}
	}
	return p
}

func checkLabels(field string, l map[string]string, add func(string, ...any)) {
	for k, v := range l {
		for _, e := range validation.IsQualifiedName(k) {
			add("%s key %q: %s", field, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			add("%s[%q] value %q: %s", field, k, v, e)
		}
	}
}

func checkSelector(field string, s *metav1.LabelSelector, podLabels map[string]string, add func(string, ...any)) {
	if s == nil {
		add("%s is missing", field)
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		add("%s: %v", field, err)
		return
	}
	if sel.Empty() {
		add("%s is empty", field)
	}
	if !sel.Matches(labels.Set(podLabels)) {
		add("%s %s does not match the pod template labels %v", field, sel, podLabels)
	}
}

func checkPort(field, name string, port int32, add func(string, ...any)) {
	if name != "" {
		for _, e := range validation.IsValidPortName(name) {
			add("%s name %q: %s", field, name, e)
		}
	}
	for _, e := range validation.IsValidPortNum(int(port)) {
		add("%s port %d: %s", field, port, e)
	}
}

func checkPod(spec corev1.PodSpec, add func(string, ...any)) {
	if len(spec.Containers) == 0 {
		add("spec.template.spec.containers is empty")
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		for _, e := range validation.IsDNS1123Label(v.Name) {
			add("volume name %q: %s", v.Name, e)
		}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		where := "container " + c.Name
		for _, e := range validation.IsDNS1123Label(c.Name) {
			add("%s: name: %s", where, e)
		}
		if c.Image == "" {
			add("%s: image is empty", where)
		}
		ports := map[string]bool{}
		for _, cp := range c.Ports {
			checkPort(where+" ports", cp.Name, cp.ContainerPort, add)
			ports[cp.Name] = true
		}
		for _, ev := range c.Env {
			for _, e := range validation.IsEnvVarName(ev.Name) {
				add("%s: env %q: %s", where, ev.Name, e)
			}
			if ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil {
				r := ev.ValueFrom.SecretKeyRef
				if r.Name == "" || r.Key == "" {
					add("%s: env %q: secretKeyRef needs a name and a key", where, ev.Name)
				}
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				add("%s: volumeMount %q names no volume of the pod", where, m.Name)
			}
			if !strings.HasPrefix(m.MountPath, "/") {
				add("%s: volumeMount %q: mountPath %q is not absolute", where, m.Name, m.MountPath)
			}
		}
		for name, pr := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if pr == nil || pr.HTTPGet == nil {
				continue
			}
			port := pr.HTTPGet.Port
			if port.StrVal != "" && !ports[port.StrVal] {
				add("%s: %s names port %q, which the container does not declare", where, name, port.StrVal)
			}
		}
	}
}
