package encryption

import (
	"time"

	"k8s.io/apiserver/pkg/server/options/encryptionconfig/controller"
)

// ReloadInterval is how often the in-process apiserver reads its
// encryption configuration for changes (upstream: one minute). Each read is
// a small file and a hash; a shorter interval makes each of rotate-keys'
// three reload waits seconds, not a minute.
const ReloadInterval = 10 * time.Second

// UseReloadInterval sets ReloadInterval on upstream's process-wide knob
// (the only way upstream offers); call it before the apiserver starts.
func UseReloadInterval() {
	controller.EncryptionConfigFileChangePollDuration = ReloadInterval
}
