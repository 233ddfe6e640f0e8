// Command elfbundle copies dynamically linked programs out of an unpacked
// Debian root (the packages' files, `dpkg-deb -x`) together with every
// shared library they need and the dynamic loader they name, so they run on
// a host that has none of those packages: kubling starts them through the
// bundled loader (`ld.so --library-path lib --argv0 NAME program`).
//
//	elfbundle -root build/debs-root -out build/payload/root/iptables \
//	    -program usr/sbin/xtables-nft-multi -program usr/sbin/xtables-legacy-multi \
//	    -plugins 'usr/lib/*/xtables'
//
// The result: OUT/sbin/<program>, OUT/<plugins' folder name>/*.so (modules
// the programs load at run time, with what they need too) and OUT/lib/
// holding the loader and the libraries by soname. The needed libraries are
// read from each file's dynamic section (debug/elf), so it works for any
// architecture, not only the build machine's; a library that cannot be found
// in the root is an error.
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var programs, plugins list
	root := flag.String("root", "", "unpacked Debian packages")
	out := flag.String("out", "", "folder to write (must not exist)")
	flag.Var(&programs, "program", "program to bundle, relative to -root (repeatable)")
	flag.Var(&plugins, "plugins", "folder (glob) of modules the programs load, relative to -root (repeatable)")
	flag.Parse()
	if *root == "" || *out == "" || len(programs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: elfbundle -root DIR -out DIR -program PATH [-program PATH…] [-plugins GLOB…]")
		os.Exit(2)
	}
	if err := bundle(*root, *out, programs, plugins); err != nil {
		fmt.Fprintln(os.Stderr, "elfbundle:", err)
		os.Exit(1)
	}
}

func bundle(root, out string, programs, plugins []string) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists", out)
	}
	libs, err := libraryIndex(root)
	if err != nil {
		return err
	}
	b := &bundler{root: root, out: out, libs: libs, copied: map[string]bool{}}
	var machine elf.Machine
	for _, p := range programs {
		m, err := b.add(p, "sbin")
		if err != nil {
			return err
		}
		if machine != 0 && m != machine {
			return fmt.Errorf("%s is for %s, the others for %s", p, m, machine)
		}
		machine = m
	}
	for _, glob := range plugins {
		dirs, err := filepath.Glob(filepath.Join(root, glob))
		if err != nil {
			return err
		}
		if len(dirs) != 1 {
			return fmt.Errorf("-plugins %s: %d folders match, want one", glob, len(dirs))
		}
		mods, err := filepath.Glob(filepath.Join(dirs[0], "*.so"))
		if err != nil {
			return err
		}
		for _, m := range mods {
			rel, _ := filepath.Rel(root, m)
			if _, err := b.add(rel, filepath.Base(dirs[0])); err != nil {
				return err
			}
		}
	}
	return nil
}

type bundler struct {
	root, out string
	libs      map[string]string // soname (file name) → path in root
	copied    map[string]bool   // destination paths written
}

// add copies root/rel into out/dir and, for an ELF file, its loader and
// its libraries; it returns the file's machine.
func (b *bundler) add(rel, dir string) (elf.Machine, error) {
	src, err := resolve(b.root, rel)
	if err != nil {
		return 0, err
	}
	f, err := elf.Open(src)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", rel, err)
	}
	defer f.Close()
	if err := b.copy(src, filepath.Join(dir, path.Base(rel))); err != nil {
		return 0, err
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, err := io.ReadAll(p.Open())
		if err != nil {
			return 0, fmt.Errorf("%s: read its loader's name: %w", rel, err)
		}
		name := strings.TrimRight(string(interp), "\x00")
		loader, err := resolve(b.root, name)
		if err != nil {
			return 0, fmt.Errorf("%s: its loader: %w", rel, err)
		}
		if err := b.copy(loader, filepath.Join("lib", path.Base(name))); err != nil {
			return 0, err
		}
	}
	return f.Machine, b.needs(f, rel)
}

// needs copies, transitively, the libraries f names in DT_NEEDED into out/lib.
func (b *bundler) needs(f *elf.File, rel string) error {
	needed, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	for _, soname := range needed {
		dst := filepath.Join("lib", soname)
		if b.copied[dst] {
			continue
		}
		src, ok := b.libs[soname]
		if !ok {
			return fmt.Errorf("%s needs %s, which no package in %s has", rel, soname, b.root)
		}
		if err := b.copy(src, dst); err != nil {
			return err
		}
		lib, err := elf.Open(src)
		if err != nil {
			return fmt.Errorf("%s: %w", soname, err)
		}
		err = b.needs(lib, soname)
		lib.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *bundler) copy(src, rel string) error {
	if b.copied[rel] {
		return nil
	}
	b.copied[rel] = true
	dst := filepath.Join(b.out, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

// libraryIndex maps every shared library's file name under root's library
// folders (lib*, usr/lib*) to its path; the first of a name found wins, in
// the loader's own order (lib before usr/lib).
func libraryIndex(root string) (map[string]string, error) {
	var dirs []string
	for _, pattern := range []string{"lib*", "lib*/*-linux-*", "usr/lib*", "usr/lib*/*-linux-*"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return nil, err
		}
		sort.Strings(m)
		dirs = append(dirs, m...)
	}
	libs := map[string]string{}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue // a file named lib*, or a link to nowhere
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !strings.Contains(e.Name(), ".so") {
				continue
			}
			if _, ok := libs[e.Name()]; ok {
				continue
			}
			rel, _ := filepath.Rel(root, filepath.Join(d, e.Name()))
			p, err := resolve(root, rel)
			if err != nil {
				continue // a dangling link: another package's file
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				libs[e.Name()] = p
			}
		}
	}
	return libs, nil
}

// resolve follows symbolic links inside root (an absolute link target is
// taken relative to root, as it would be on the host the files came from).
func resolve(root, rel string) (string, error) {
	cur := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(rel)), "/")
	for range 40 {
		parts := strings.Split(cur, "/")
		resolved := false
		for i := range parts {
			prefix := strings.Join(parts[:i+1], "/")
			p := filepath.Join(root, filepath.FromSlash(prefix))
			st, err := os.Lstat(p)
			if err != nil {
				return "", fmt.Errorf("%s: %w", rel, err)
			}
			if st.Mode()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join("/", path.Dir("/"+prefix), target)
			}
			rest := strings.Join(parts[i+1:], "/")
			cur = strings.TrimPrefix(path.Clean(target+"/"+rest), "/")
			resolved = true
			break
		}
		if !resolved {
			return filepath.Join(root, filepath.FromSlash(cur)), nil
		}
	}
	return "", fmt.Errorf("%s: too many symbolic links", rel)
}
