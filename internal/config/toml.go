package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// The file as decoded. Which keys were given, and on which line, is in
// the layout.
type rawFile struct {
	Defaults rawDefaults  `toml:"defaults"`
	Server   []rawServer  `toml:"server"`
	Account  []rawAccount `toml:"account"`
}

type rawDefaults struct {
	ArchiveRoot string `toml:"archive_root"`
	CAFile      string `toml:"ca_file"`
	Connections int64  `toml:"connections"`
	Timeout     string `toml:"timeout"`
	Format      string `toml:"format"`
	Compress    string `toml:"compress"`
	Checkpoint  string `toml:"checkpoint"`
	Parallel    int64  `toml:"parallel"`
	rawKeep
}

type rawServer struct {
	Host                 string `toml:"host"`
	MaxConnections       int64  `toml:"max_connections"`
	CAFile               string `toml:"ca_file"`
	AdminUser            string `toml:"admin_user"`
	AdminPasswordFile    string `toml:"admin_password_file"`
	AdminPasswordEnv     string `toml:"admin_password_env"`
	AdminPasswordCommand string `toml:"admin_password_command"`
	rawKeep
}

type rawAccount struct {
	Name                 string `toml:"name"`
	Source               string `toml:"source"`
	Archive              string `toml:"archive"`
	PasswordFile         string `toml:"password_file"`
	PasswordEnv          string `toml:"password_env"`
	PasswordCommand      string `toml:"password_command"`
	AdminUser            string `toml:"admin_user"`
	AdminPasswordFile    string `toml:"admin_password_file"`
	AdminPasswordEnv     string `toml:"admin_password_env"`
	AdminPasswordCommand string `toml:"admin_password_command"`
	OAuth2TokenCommand   string `toml:"oauth2_token_command"`
	OAuth2TokenFile      string `toml:"oauth2_token_file"`
	AuthMech             string `toml:"auth_mech"`
	CAFile               string `toml:"ca_file"`
	Connections          int64  `toml:"connections"`
	Timeout              string `toml:"timeout"`
	Format               string `toml:"format"`
	Compress             string `toml:"compress"`
	Checkpoint           string `toml:"checkpoint"`
	rawKeep
}

// rawKeep are the keys of which folders an account leaves out and which
// snapshots it keeps, given in any table. The counts and max_unused take
// more than one type (4 or "unlimited"; 10 or 12.5): parser.keeping
// checks them.
type rawKeep struct {
	ExcludeFolders []string `toml:"exclude_folders"`
	KeepLast       any      `toml:"keep_last"`
	KeepHourly     any      `toml:"keep_hourly"`
	KeepDaily      any      `toml:"keep_daily"`
	KeepWeekly     any      `toml:"keep_weekly"`
	KeepMonthly    any      `toml:"keep_monthly"`
	KeepYearly     any      `toml:"keep_yearly"`
	KeepWithin     string   `toml:"keep_within"`
	Prune          bool     `toml:"prune"`
	MaxUnused      any      `toml:"max_unused"`
}

// Table kinds, as written in the file.
const (
	kindDefaults = "defaults" // [defaults]
	kindServer   = "server"   // [[server]]
	kindAccount  = "account"  // [[account]]
)

// table is one table as written: [defaults], or one [[server]] or
// [[account]] entry, with the line of its header and of each key.
type table struct {
	kind string
	line int
	keys map[string]int
}

func (t *table) has(key string) bool { return t != nil && t.keys[key] > 0 }

// at returns the line of key, or of the table's header when the key is
// not given.
func (t *table) at(key string) int {
	if t == nil {
		return 0
	}
	if l := t.keys[key]; l > 0 {
		return l
	}
	return t.line
}

// layout is where everything is in the file.
type layout struct {
	defaults *table
	servers  []*table
	accounts []*table
}

// keyAt returns the key given on line, or "".
func (l *layout) keyAt(line int) string {
	all := append(append([]*table{l.defaults}, l.servers...), l.accounts...)
	for _, t := range all {
		if t == nil {
			continue
		}
		for k, kl := range t.keys {
			if kl == line {
				return k
			}
		}
	}
	return ""
}

// known are the keys of each kind of table: the toml tags of its struct.
var known = map[string][]string{
	kindDefaults: tags(rawDefaults{}),
	kindServer:   tags(rawServer{}),
	kindAccount:  tags(rawAccount{}),
}

func tags(v any) []string {
	var out []string
	for _, f := range fields(reflect.TypeOf(v)) {
		out = append(out, f.Tag.Get("toml"))
	}
	return out
}

// fields are the fields of a raw struct, those of embedded structs (as
// the decoder sees them) included.
func fields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, fields(f.Type)...)
			continue
		}
		out = append(out, f)
	}
	return out
}

// inlineSecrets are keys that would put a secret in the file, and where
// the secret goes instead.
var inlineSecrets = map[string]string{
	"password":       "password_file, password_env or password_command",
	"pass":           "password_file, password_env or password_command",
	"admin_password": "admin_password_file, admin_password_env or admin_password_command",
	"oauth2_token":   "oauth2_token_file or oauth2_token_command",
	"token":          "oauth2_token_file or oauth2_token_command",
}

// scan walks the file's expressions and records its layout. It refuses
// anything but [defaults], [[server]] and [[account]] tables holding
// plain keys of their kind, each given once.
func scan(file string, data []byte) (*layout, error) {
	var p unstable.Parser
	p.Reset(data)
	l := &layout{}
	var cur *table
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind == unstable.Comment {
			continue
		}
		var names []string
		line := 0
		it := e.Key()
		for it.Next() {
			k := it.Node()
			names = append(names, string(k.Data))
			if line == 0 && k.Raw.Length > 0 {
				line = p.Shape(k.Raw).Start.Line
			}
		}
		name := strings.Join(names, ".")
		switch e.Kind {
		case unstable.Table:
			switch name {
			case kindDefaults:
				if l.defaults != nil {
					return nil, errorf(file, line, "[defaults] is given twice (first at line %d)", l.defaults.line)
				}
				cur = &table{kind: kindDefaults, line: line, keys: map[string]int{}}
				l.defaults = cur
			case kindServer, kindAccount:
				return nil, errorf(file, line, "[%s] must be written [[%s]]: there may be several", name, name)
			default:
				return nil, errorf(file, line, "unknown table [%s] (the file has [defaults], [[server]] and [[account]])", name)
			}
		case unstable.ArrayTable:
			cur = &table{kind: name, line: line, keys: map[string]int{}}
			switch name {
			case kindServer:
				l.servers = append(l.servers, cur)
			case kindAccount:
				l.accounts = append(l.accounts, cur)
			case kindDefaults:
				return nil, errorf(file, line, "[[defaults]] must be written [defaults]: there is one")
			default:
				return nil, errorf(file, line, "unknown table [[%s]] (the file has [defaults], [[server]] and [[account]])", name)
			}
		case unstable.KeyValue:
			if cur == nil {
				return nil, errorf(file, line, "key %q is outside any table: put it under [defaults], [[server]] or [[account]]", name)
			}
			where := "[" + cur.kind + "]"
			if cur.kind != kindDefaults {
				where = "[" + where + "]"
			}
			if alt, ok := inlineSecrets[name]; ok {
				return nil, errorf(file, line, "%s in %s would keep a secret in the configuration file, which is refused: use %s", name, where, alt)
			}
			if len(names) != 1 || !contains(known[cur.kind], name) {
				return nil, errorf(file, line, "unknown key %q in %s (known keys: %s)", name, where, strings.Join(sorted(known[cur.kind]), ", "))
			}
			if first := cur.keys[name]; first > 0 {
				return nil, errorf(file, line, "key %q is given twice in this %s (first at line %d)", name, where, first)
			}
			cur.keys[name] = line
		}
	}
	if err := p.Error(); err != nil {
		return nil, parseError(file, data, err)
	}
	return l, nil
}

// parseError gives a syntax error its line: the decoder reports the same
// error with a position.
func parseError(file string, data []byte, perr error) error {
	var raw rawFile
	err := toml.Unmarshal(data, &raw)
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return errorf(file, row, "%s", strings.TrimPrefix(de.Error(), "toml: "))
	}
	return errorf(file, 0, "%v", perr)
}

// decode decodes data, whose layout scan accepted, and reports a value of
// the wrong type with its line.
func decode(file string, data []byte, l *layout) (*rawFile, error) {
	var raw rawFile
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&raw)
	if err == nil {
		return &raw, nil
	}
	var de *toml.DecodeError
	var sm *toml.StrictMissingError
	switch {
	case errors.As(err, &de):
		row, _ := de.Position()
		if want := wantType(l.keyAt(row)); want != "" {
			return nil, errorf(file, row, "%s must be %s", l.keyAt(row), want)
		}
		return nil, errorf(file, row, "%s", strings.TrimPrefix(de.Error(), "toml: "))
	case errors.As(err, &sm) && len(sm.Errors) > 0:
		row, _ := sm.Errors[0].Position()
		return nil, errorf(file, row, "unknown key %q", strings.Join(sm.Errors[0].Key(), "."))
	}
	return nil, errorf(file, 0, "%s", strings.TrimPrefix(err.Error(), "toml: "))
}

// wantType describes the value a key takes.
func wantType(key string) string {
	for _, v := range []any{rawDefaults{}, rawServer{}, rawAccount{}} {
		for _, f := range fields(reflect.TypeOf(v)) {
			if f.Tag.Get("toml") != key {
				continue
			}
			switch f.Type.Kind() {
			case reflect.String:
				return `a string in quotes, e.g. ` + key + ` = "…"`
			case reflect.Int64:
				return "a whole number, e.g. " + key + " = 4"
			case reflect.Bool:
				return "true or false, e.g. " + key + " = true"
			case reflect.Slice:
				return `a list of strings in quotes, e.g. ` + key + ` = ["…", "…"]`
			}
		}
	}
	return ""
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// errorf returns an *Error at file:line.
func errorf(file string, line int, format string, args ...any) error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}
