package serverjoin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	genericrequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/join"
)

// maxRequestBytes bounds a server join request's body (as an agent's).
const maxRequestBytes = 256 << 10

// ServeHTTP answers `kubling server --server URL --token T`: with the
// server token only (an agent's join token is refused), it has the new
// server added to the datastore and hands it the sealed cluster keys.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		join.WriteError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	user, ok := genericrequest.UserFrom(r.Context())
	id := ""
	if s.TokenID != nil {
		id = s.TokenID()
	}
	if !ok || id == "" || user.GetName() != "system:bootstrap:"+id {
		join.WriteError(w, http.StatusForbidden, "only the server token (the server's <data-dir>/server/token) joins servers; this token joins agents only")
		return
	}
	var req join.ServerRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes)).Decode(&req); err != nil {
		join.WriteError(w, http.StatusBadRequest, fmt.Sprintf("malformed server join request: %v", err))
		return
	}
	if !config.ValidNodeName(req.NodeName) {
		join.WriteError(w, http.StatusBadRequest, fmt.Sprintf("node name %q is not a lowercase DNS name of at most %d characters", req.NodeName, config.MaxNodeNameLength))
		return
	}
	if u, err := url.Parse(req.EtcdPeerURL); err != nil || u.Scheme != "https" || u.Port() == "" {
		join.WriteError(w, http.StatusBadRequest, fmt.Sprintf("etcd peer URL %q: want https://<ip>:<port>", req.EtcdPeerURL))
		return
	}
	answer := s.answer
	if answer == nil {
		answer = s.join
	}
	resp, code, err := answer(r.Context(), req)
	if err != nil {
		s.Log.Info("Server join refused", "node", req.NodeName, "reason", err.Error())
		join.WriteError(w, code, err.Error())
		return
	}
	s.Log.Info("Server joined", "node", req.NodeName, "etcdPeer", req.EtcdPeerURL)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}
