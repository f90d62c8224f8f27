package backup

import (
	"errors"
	"fmt"

	"github.com/mailvault/mailvault/internal/connerr"
)

// What a run's error says, and how the engine classifies the errors of a
// Source. cmd/mailvault maps the exported sentinels to exit codes.

// ErrPartial is wrapped by the error Run returns when the snapshot was
// committed but some folders or messages could not be backed up.
var ErrPartial = errors.New("backup: some folders or messages could not be backed up")

// ErrInterrupted is wrapped when the run was cancelled; what was fetched
// until then is committed as a partial snapshot.
var ErrInterrupted = errors.New("backup: interrupted")

// ErrStorage is wrapped when the archive cannot be written (disk full,
// quota, permissions). The run stops at once; what was stored completely is
// committed as a partial snapshot if the manifest can still be written.
var ErrStorage = errors.New("backup: cannot write the archive")

func storageErr(err error) error {
	if err == nil || errors.Is(err, ErrStorage) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// errMissing marks messages the server listed but did not deliver.
var errMissing = errors.New("messages listed by the server were not delivered")

// errRecreated: the folder was deleted and created again while it was
// fetched; its new incarnation is fetched next.
var errRecreated = errors.New("folder re-created during the run")

// isConnErr reports whether err left the connection unusable: a new one
// may succeed (adapters wrap such errors in a connerr.Error). The folder
// is then tried again on a new connection; any other error fails it.
func isConnErr(err error) bool { return connerr.Is(err) }
