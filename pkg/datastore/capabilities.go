package datastore

import "context"

// Optional capabilities: what only some kinds of datastore can do. A kind
// implements those it can honour, and callers ask for one by type assertion:
//
//	if s, ok := store.(Snapshotter); ok {
//		err = s.Snapshot(ctx, path)
//	}

// Snapshotter is a datastore that can copy its own data to a file.
type Snapshotter interface {
	// Snapshot writes a consistent copy of the datastore's data to path,
	// which the same kind can later use as its data (for SQLite: a database
	// file). It may be called while the datastore serves. The write is
	// atomic: path holds either what it held before or the whole snapshot,
	// even after a crash; an existing file at path is replaced.
	Snapshot(ctx context.Context, path string) error
}

// MemberJoiner is embedded etcd, whose member a server join adds to an
// existing cluster's (pkg/server/serverjoin).
type MemberJoiner interface {
	// JoinMembers has the member join the cluster j describes, when it
	// starts without data of its own. Called before Start.
	JoinMembers(j *EtcdJoin)
}
