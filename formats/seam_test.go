package formats

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// storageChoosers are the only functions outside this package that may
// name a storage kind: the command line's flags that choose the storage
// of a new archive (package directory and function name).
var storageChoosers = map[string]bool{
	"cmd/mailvault.storageFlags":   true,
	"cmd/mailvault.storageOptions": true,
}

// TestNobodyAsksTheStorageKind: the storage is the archive's own business.
// Outside this package no code names StorageMbox or StorageMaildir (but
// the flags that choose it for a new archive), and no non-test code reads
// the kind from an archive (Config.Storage, Storage().Storage): it calls
// the archive's methods instead.
func TestNobodyAsksTheStorageKind(t *testing.T) {
	const formatsPath = "github.com/mailvault/mailvault/formats"
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel == "formats", d.Name() == "testdata", d.Name() == "vendor", rel != "." && strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		files++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		local := ""
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == formatsPath {
				local = "formats"
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		if local == "" {
			return nil
		}
		isTest := strings.HasSuffix(p, "_test.go")
		pkgDir := filepath.ToSlash(filepath.Dir(rel))
		for _, decl := range f.Decls {
			fn := ""
			if fd, ok := decl.(*ast.FuncDecl); ok {
				fn = fd.Name.Name
			}
			ast.Inspect(decl, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				where := fmt.Sprintf("%s:%d", rel, fset.Position(sel.Pos()).Line)
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == local && (sel.Sel.Name == "StorageMbox" || sel.Sel.Name == "StorageMaildir") {
					if !storageChoosers[pkgDir+"."+fn] {
						problems = append(problems, where+": names formats."+sel.Sel.Name)
					}
				}
				if sel.Sel.Name == "Storage" && !isTest && readsKind(sel.X) {
					problems = append(problems, where+": reads the archive's storage kind")
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files outside formats; the walk missed the module", files)
	}
	for _, p := range problems {
		t.Errorf("%s: ask the archive (NewWriter, OpenMessage, ReuseStored, StoredBytes, AfterCommit, ...) instead", p)
	}
}

// readsKind reports whether x is X.Config or X.Storage(), whose field
// Storage is the archive's storage kind.
func readsKind(x ast.Expr) bool {
	switch x := x.(type) {
	case *ast.SelectorExpr:
		return x.Sel.Name == "Config"
	case *ast.CallExpr:
		s, ok := x.Fun.(*ast.SelectorExpr)
		return ok && s.Sel.Name == "Storage" && len(x.Args) == 0
	}
	return false
}
