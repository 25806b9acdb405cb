package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "CDCRELAY_"

// Errors is the list of problems found in a config; each names its key.
type Errors []error

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

func (e Errors) Unwrap() []error { return e }

// Load reads the YAML file at path (empty: none, for a config made entirely
// of environment variables), applies the environment, fills defaults and
// validates. Every problem is returned at once, as Errors.
func Load(path string) (*Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookup func(string) (string, bool)) (*Config, error) {
	var cfg Config
	var errs Errors
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, Errors{fmt.Errorf("config: read %s: %w", path, unwrapPath(err))}
		}
		errs = append(errs, decodeYAML(data, &cfg)...)
	}
	errs = append(errs, applyEnv(reflect.ValueOf(&cfg).Elem(), "", lookup)...)
	errs = append(errs, loadSecrets(&cfg, lookup)...)
	cfg.SetDefaults()
	errs = append(errs, cfg.Validate()...)
	if len(errs) > 0 {
		return nil, errs
	}
	return &cfg, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func decodeYAML(data []byte, cfg *Config) Errors {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Errors{fmt.Errorf("config: not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil
	}
	var errs Errors
	decodeNode(root.Content[0], reflect.ValueOf(cfg).Elem(), "", &errs)
	return errs
}

var durationType = reflect.TypeOf(time.Duration(0))

// decodeNode fills v from n, recording one error per bad key with its path.
func decodeNode(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Kind() == reflect.Struct {
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, fmt.Errorf("%s: line %d: expected a mapping of keys", orRoot(path), n.Line))
			return
		}
		fields := yamlFields(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			sub := join(path, key)
			idx, ok := fields[key]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: line %d: unknown key; allowed keys: %s", sub, n.Content[i].Line, strings.Join(fieldNames(v.Type()), ", ")))
				continue
			}
			decodeNode(n.Content[i+1], v.Field(idx), sub, errs)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if v.Kind() == reflect.Slice {
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, fmt.Errorf("%s: line %d: expected a list, e.g. [a, b]", path, n.Line))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decodeNode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
		v.Set(out)
		return
	}
	if n.Kind != yaml.ScalarNode {
		*errs = append(*errs, fmt.Errorf("%s: line %d: expected a single value", path, n.Line))
		return
	}
	if err := setScalar(v, n.Value); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: line %d: %v", path, n.Line, err))
	}
}

// setScalar parses s into v, which is a string, bool, *bool, integer or
// duration field.
func setScalar(v reflect.Value, s string) error {
	if v.Kind() == reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		if err := setScalar(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration; use a number with a unit, e.g. 500ms, 10s, 2m", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean; use true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number in range", s)
		}
		v.SetInt(i)
	case reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative whole number in range", s)
		}
		v.SetUint(u)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported value")
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// EnvName is the environment variable that overrides a dotted key path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv overrides every leaf field whose CDCRELAY_<PATH> variable is set.
func applyEnv(v reflect.Value, path string, lookup func(string) (string, bool)) Errors {
	var errs Errors
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		sub := join(path, name)
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			errs = append(errs, applyEnv(f, sub, lookup)...)
			continue
		}
		s, ok := lookup(EnvName(sub))
		if !ok {
			continue
		}
		if sep := t.Field(i).Tag.Get("envsep"); sep != "" && f.Kind() == reflect.Slice {
			// The entries themselves hold commas.
			var parts []string
			for _, p := range strings.Split(s, sep) {
				if p = strings.TrimSpace(p); p != "" {
					parts = append(parts, p)
				}
			}
			f.Set(reflect.ValueOf(parts))
			continue
		}
		if err := setScalar(f, s); err != nil {
			errs = append(errs, fmt.Errorf("%s (from %s): %v", sub, EnvName(sub), err))
		}
	}
	return errs
}

// loadSecrets reads each password from its environment variable or its
// file; the YAML file can never hold one.
func loadSecrets(cfg *Config, lookup func(string) (string, bool)) Errors {
	var errs Errors
	read := func(key, env, file string) Secret {
		if s, ok := lookup(env); ok && s != "" {
			if file != "" {
				errs = append(errs, fmt.Errorf("%s: both %s and the file are set; keep one", key, env))
			}
			return Secret(s)
		}
		if file == "" {
			return ""
		}
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cannot read %s: %v", key, file, unwrapPath(err)))
			return ""
		}
		return Secret(strings.TrimRight(string(data), "\r\n"))
	}
	cfg.Source.Password = read("source.password_file", "CDCRELAY_SOURCE_PASSWORD", cfg.Source.PasswordFile)
	cfg.Source.ColumnHashSalt = read("source.column_hash_salt_file", "CDCRELAY_SOURCE_COLUMN_HASH_SALT", cfg.Source.ColumnHashSaltFile)
	cfg.Kafka.SASL.Password = read("kafka.sasl.password_file", "CDCRELAY_KAFKA_SASL_PASSWORD", cfg.Kafka.SASL.PasswordFile)
	return errs
}
