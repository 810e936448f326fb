// What a real ESXi host or vCenter shows that preflight must read, and that
// govmomi 0.24.2's simulator does not model (see tests/peers/README.md,
// section "issue 11 items 5 and 7"):
//
//   - POST /vmigrate-realhost {"op":"disk",...} gives one disk a disk mode
//     (independent_persistent...), a sharing mode (sharingMultiWriter), an
//     RDM backing (VirtualDiskRawDiskMappingVer1BackingInfo), a
//     backingObjectId (vSAN/vVol objects) or a provisioning type
//     (thinProvisioned, eagerlyScrub);
//   - {"op":"datastore","name":..,"type":"vsan"} sets summary.type;
//   - {"op":"vm","vm":..,"version":"vmx-21","host":"DC0_H1"} sets
//     config.version, or runtime.host as after a DRS vMotion;
//   - {"op":"host","host":..,"ssh":bool,"sshClient":bool} sets the TSM-SSH
//     service's running state and the sshClient firewall ruleset;
//   - {"op":"cluster","name":..,"drs":bool} turns a cluster's DRS on or off;
//     removing a per-VM DRS override (ReconfigureComputeResource_Task with a
//     removeKey) works as on vCenter (the simulator panics on it);
//   - {"op":"privileges","user":..,"privileges":[...]} makes
//     FetchUserPrivilegeOnEntities answer that list for the user (the
//     simulator answers the Admin role's privileges for anybody).
//
// At start every host runs TSM-SSH, as a host prepared per docs/real-hosts.md
// does (ESXi's default is stopped; the simulator's too).
package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type realHostRequest struct {
	Op              string    `json:"op"`
	VM              string    `json:"vm"`
	Key             int32     `json:"key"`
	Mode            string    `json:"mode"`
	Sharing         string    `json:"sharing"`
	RDM             string    `json:"rdm"`
	BackingObjectId string    `json:"backingObjectId"`
	Thin            *bool     `json:"thin"`
	EagerlyScrub    *bool     `json:"eagerlyScrub"`
	Name            string    `json:"name"`
	Type            string    `json:"type"`
	Version         string    `json:"version"`
	Host            string    `json:"host"`
	SSH             *bool     `json:"ssh"`
	SSHClient       *bool     `json:"sshClient"`
	User            string    `json:"user"`
	Privileges      *[]string `json:"privileges"`
	DRS             *bool     `json:"drs"`
}

// realHostHandler answers POST /vmigrate-realhost and passes the rest on.
type realHostHandler struct {
	next http.Handler
}

func (h *realHostHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/sdk") {
		h.serveSoap(w, r)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/vmigrate-realhost" {
		h.next.ServeHTTP(w, r)
		return
	}
	var req realHostRequest
	serveOp(w, r, &req, func() error {
		switch req.Op {
		case "disk":
			return setDiskKind(&req)
		case "datastore":
			return setDatastoreType(&req)
		case "vm":
			return setVMFacts(&req)
		case "host":
			return setHostServices(req.Host, req.SSH, req.SSHClient)
		case "cluster":
			return setClusterDrs(req.Name, req.DRS)
		case "privileges":
			privMu.Lock()
			if req.Privileges == nil {
				delete(userPrivileges, req.User)
			} else {
				userPrivileges[req.User] = *req.Privileges
			}
			privMu.Unlock()
			return nil
		}
		return fmt.Errorf("unknown op %q", req.Op)
	})
}

// setupRealHost runs once after the model is created.
func setupRealHost() {
	on := true
	_ = setHostServices("", &on, nil)
}

// ---------------------------------------------------------------------------
// Privileges per user.

var (
	privMu         sync.Mutex
	userPrivileges = map[string][]string{}
)

type fetchPrivilegesResponse struct {
	XMLName   xml.Name                    `xml:"urn:vim25 FetchUserPrivilegeOnEntitiesResponse"`
	Returnval []types.UserPrivilegeResult `xml:"returnval"`
}

// serveSoap answers FetchUserPrivilegeOnEntities with the privileges a test set
// for the user on every entity (vSphere API 6.5+: a UserPrivilegeResult per
// entity), once the simulator itself accepted the call (session, arguments).
func (h *realHostHandler) serveSoap(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, []byte("ReconfigureComputeResource_Task")) && bytes.Contains(body, []byte("removeKey")) {
		h.reconfigureCluster(w, r, body)
		return
	}
	if bytes.Contains(body, []byte("ReconfigVM_Task")) {
		h.reconfigure(w, r, body)
		return
	}
	if !bytes.Contains(body, []byte("FetchUserPrivilegeOnEntities")) {
		h.next.ServeHTTP(w, r)
		return
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || method.Name != "FetchUserPrivilegeOnEntities" {
		h.next.ServeHTTP(w, r)
		return
	}
	req := method.Body.(*types.FetchUserPrivilegeOnEntities)
	privMu.Lock()
	privs, ok := userPrivileges[req.UserName]
	privMu.Unlock()
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, r)
	if !ok || rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	out := &fetchPrivilegesResponse{}
	for _, e := range req.Entities {
		out.Returnval = append(out.Returnval, types.UserPrivilegeResult{Entity: e, Privileges: append([]string{}, privs...)})
	}
	writeSoap(w, http.StatusOK, out)
}

// ---------------------------------------------------------------------------
// Disks, datastores, VMs, hosts.

func setDiskKind(req *realHostRequest) error {
	vm, err := vmNamed(req.VM)
	if err != nil {
		return err
	}
	simulator.Map.WithLock(vm, func() {
		err = replaceFlatDisks(vm, req.Key, false, func(nd *types.VirtualDisk, old *types.VirtualDiskFlatVer2BackingInfo) {
			if req.RDM != "" {
				rdmMu.Lock()
				if rdmFlat[vm.Self.Value] == nil {
					rdmFlat[vm.Self.Value] = map[int32]*types.VirtualDiskFlatVer2BackingInfo{}
				}
				rdmFlat[vm.Self.Value][nd.Key] = old
				rdmMu.Unlock()
				nd.Backing = &types.VirtualDiskRawDiskMappingVer1BackingInfo{
					VirtualDeviceFileBackingInfo: old.VirtualDeviceFileBackingInfo,
					DeviceName:                   "/vmfs/devices/disks/naa.600a098038303742695d4a2f4d6c6f31",
					CompatibilityMode:            req.RDM,
					DiskMode:                     "persistent",
					LunUuid:                      "0200000000600a098038303742695d4a2f4d6c6f314c554e",
				}
			} else {
				nb := *old
				if req.Mode != "" {
					nb.DiskMode = req.Mode
				}
				if req.Sharing != "" {
					nb.Sharing = req.Sharing
				}
				if req.BackingObjectId != "" {
					nb.BackingObjectId = req.BackingObjectId
				}
				if req.Thin != nil {
					v := *req.Thin
					nb.ThinProvisioned = &v
				}
				if req.EagerlyScrub != nil {
					v := *req.EagerlyScrub
					nb.EagerlyScrub = &v
				}
				nd.Backing = &nb
			}
		})
	})
	return err
}

// The simulator's own reconfigure handles flat disks only (it panics on an RDM
// backing): while it runs, an RDM disk shows its former flat backing again.
var (
	rdmMu   sync.Mutex
	rdmFlat = map[string]map[int32]*types.VirtualDiskFlatVer2BackingInfo{}
)

func swapBackings(vm *simulator.VirtualMachine, toFlat bool) {
	rdmMu.Lock()
	saved := rdmFlat[vm.Self.Value]
	rdmMu.Unlock()
	if len(saved) == 0 {
		return
	}
	simulator.Map.WithLock(vm, func() {
		devices := make([]types.BaseVirtualDevice, len(vm.Config.Hardware.Device))
		copy(devices, vm.Config.Hardware.Device)
		for i, d := range devices {
			disk, ok := d.(*types.VirtualDisk)
			if !ok || saved[disk.Key] == nil {
				continue
			}
			nd := *disk
			if toFlat {
				if rdm, ok := disk.Backing.(*types.VirtualDiskRawDiskMappingVer1BackingInfo); ok {
					nd.Backing = saved[disk.Key]
					rdmMu.Lock()
					rdmBacking[rdmKey(vm, disk.Key)] = rdm
					rdmMu.Unlock()
				}
			} else {
				rdmMu.Lock()
				rdm := rdmBacking[rdmKey(vm, disk.Key)]
				rdmMu.Unlock()
				if rdm != nil {
					nd.Backing = rdm
				}
			}
			devices[i] = &nd
		}
		vm.Config.Hardware.Device = devices
	})
}

var rdmBacking = map[string]*types.VirtualDiskRawDiskMappingVer1BackingInfo{}

func rdmKey(vm *simulator.VirtualMachine, key int32) string {
	return fmt.Sprintf("%s/%d", vm.Self.Value, key)
}

// reconfigure lets the simulator reconfigure a VM whose disks include an RDM.
func (h *realHostHandler) reconfigure(w http.ResponseWriter, r *http.Request, body []byte) {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var vm *simulator.VirtualMachine
	if err == nil && method.Name == "ReconfigVM_Task" {
		vm, _ = simulator.Map.Get(method.This).(*simulator.VirtualMachine)
	}
	if vm == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	swapBackings(vm, true)
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, r)
	swapBackings(vm, false)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// pyVmomi writes <removeKey xsi:type="ManagedObject" type="VirtualMachine">vm-1</removeKey>,
// which the simulator's decoder leaves nil (vCenter reads it as the VM's reference).
var removeKeyRe = regexp.MustCompile(`<removeKey[^>]*\stype="([A-Za-z]+)"[^>]*>([^<]+)</removeKey>`)

type reconfigureClusterResponse struct {
	XMLName   xml.Name                     `xml:"urn:vim25 ReconfigureComputeResource_TaskResponse"`
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

// reconfigureCluster removes a per-VM DRS override as vCenter does: the simulator
// decodes pyVmomi's removeKey as nil and panics on it, so the key is read from the
// request before the simulator's own method runs.
func (h *realHostHandler) reconfigureCluster(w http.ResponseWriter, r *http.Request, body []byte) {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var cluster *simulator.ClusterComputeResource
	var req *types.ReconfigureComputeResource_Task
	if err == nil && method.Name == "ReconfigureComputeResource_Task" {
		cluster, _ = simulator.Map.Get(method.This).(*simulator.ClusterComputeResource)
		req, _ = method.Body.(*types.ReconfigureComputeResource_Task)
	}
	spec, _ := func() (*types.ClusterConfigSpecEx, bool) {
		if req == nil {
			return nil, false
		}
		s, ok := req.Spec.(*types.ClusterConfigSpecEx)
		return s, ok
	}()
	if cluster == nil || spec == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	keys := removeKeyRe.FindAllSubmatch(body, -1)
	for i := range spec.DrsVmConfigSpec {
		switch k := spec.DrsVmConfigSpec[i].RemoveKey.(type) {
		case *types.ManagedObjectReference:
			spec.DrsVmConfigSpec[i].RemoveKey = *k
		case types.ManagedObjectReference:
		default:
			if len(keys) > 0 && spec.DrsVmConfigSpec[i].Operation == types.ArrayUpdateOperationRemove {
				spec.DrsVmConfigSpec[i].RemoveKey = types.ManagedObjectReference{
					Type: string(keys[0][1]), Value: string(keys[0][2])}
				keys = keys[1:]
			} else {
				log.Printf("removeKey of type %T: %#v", k, k)
			}
		}
	}
	var res soap.HasFault
	simulator.Map.WithLock(cluster, func() { res = cluster.ReconfigureComputeResourceTask(req) })
	out, ok := res.(*methods.ReconfigureComputeResource_TaskBody)
	if !ok || out.Res == nil {
		http.Error(w, "reconfigure failed", http.StatusInternalServerError)
		return
	}
	writeSoap(w, http.StatusOK, &reconfigureClusterResponse{Returnval: out.Res.Returnval})
}

func setDatastoreType(req *realHostRequest) error {
	for _, e := range simulator.Map.All("Datastore") {
		if ds, ok := e.(*simulator.Datastore); ok && ds.Name == req.Name {
			simulator.Map.WithLock(ds, func() { ds.Summary.Type = req.Type })
			return nil
		}
	}
	return fmt.Errorf("no datastore %q", req.Name)
}

// setClusterDrs turns DRS on or off on a cluster (the simulator's reconfigure
// applies rules, groups and overrides only).
func setClusterDrs(name string, on *bool) error {
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		c, ok := e.(*simulator.ClusterComputeResource)
		if !ok || c.Name != name || on == nil {
			continue
		}
		simulator.Map.WithLock(c, func() {
			cfg := c.ConfigurationEx.(*types.ClusterConfigInfoEx)
			drs := cfg.DrsConfig
			v := *on
			drs.Enabled = &v
			cfg.DrsConfig = drs
		})
		return nil
	}
	return fmt.Errorf("no cluster %q (or no drs value)", name)
}

func setVMFacts(req *realHostRequest) error {
	vm, err := vmNamed(req.VM)
	if err != nil {
		return err
	}
	var host *simulator.HostSystem
	if req.Host != "" {
		if host = findHost(req.Host); host == nil {
			return fmt.Errorf("no host %q", req.Host)
		}
	}
	simulator.Map.WithLock(vm, func() {
		if req.Version != "" {
			vm.Config.Version = req.Version
		}
		if host != nil {
			ref := host.Self
			vm.Runtime.Host = &ref
			vm.Summary.Runtime.Host = &ref
		}
	})
	return nil
}

// setHostServices sets TSM-SSH running and the sshClient ruleset on one host
// (name) or every host (""); nil leaves a setting as it is.
func setHostServices(name string, ssh, sshClient *bool) error {
	found := false
	for _, e := range simulator.Map.All("HostSystem") {
		h, ok := e.(*simulator.HostSystem)
		if !ok || (name != "" && h.Name != name) || h.Config == nil {
			continue
		}
		found = true
		simulator.Map.WithLock(h, func() {
			if ssh != nil && h.Config.Service != nil {
				svc := *h.Config.Service
				svc.Service = append([]types.HostService{}, svc.Service...)
				for i := range svc.Service {
					if svc.Service[i].Key == "TSM-SSH" {
						svc.Service[i].Running = *ssh
					}
				}
				h.Config.Service = &svc
			}
			if sshClient != nil && h.Config.Firewall != nil {
				fw := *h.Config.Firewall
				fw.Ruleset = append([]types.HostFirewallRuleset{}, fw.Ruleset...)
				for i := range fw.Ruleset {
					if strings.EqualFold(fw.Ruleset[i].Key, "sshClient") {
						fw.Ruleset[i].Enabled = *sshClient
					}
				}
				h.Config.Firewall = &fw
			}
		})
	}
	if !found {
		return fmt.Errorf("no host %q", name)
	}
	return nil
}
