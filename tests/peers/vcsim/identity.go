// One vCenter for both hosts: what vmigrate's "retire the source" and "keep
// the MAC" (issue 11 item 1) meet on a real vCenter and govmomi 0.24.2's
// simulator does not model (see tests/peers/README.md, section "issue 11
// item 1"):
//
//   - every host has a HostAutoStartManager (the simulator has only its
//     reference in configManager): config.powerInfo is read back, and
//     ReconfigureAutostart adds or replaces a VM's entry, or removes it when
//     its startAction and stopAction are both "none" (vSphere API reference,
//     AutoStartPowerInfo);
//   - POST /vmigrate-identity {"op":"autostart","host":..,"vm":..,"order":N}
//     puts a VM in its host's autostart order, as an operator would;
//   - RegisterVM_Task reads the registered .vmx's ethernetN entries back as
//     NICs (the simulator registers a VM without devices): addressType
//     "static" (API "manual") keeps ethernetN.address; "generated" and "vpx"
//     (API "assigned") keep ethernetN.generatedAddress unless another
//     registered VM has that MAC, in which case a new one is generated, as
//     vCenter does for a generated MAC that "conflicts with that of another
//     registered virtual machine" (vSphere Networking docs; that vCenter does
//     it at registration rather than at the next power-on is a guess);
//     startConnected comes from ethernetN.startConnected;
//   - PowerOnVM_Task of such a VM is refused when a NIC's static MAC is a
//     VMware OUI address outside 00:50:56:00:00:00-00:50:56:3F:FF:FF and the
//     .vmx lacks ethernetN.checkMACAddress = "FALSE" (ESXi 5.1+: "The MAC
//     address entered is not in the valid range"; the exact ESXi 7/8 fault
//     text is a guess).
package main

import (
	"bufio"
	"fmt"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ---------------------------------------------------------------------------
// HostAutoStartManager, one per host.

type autoStartManager struct {
	mo.HostAutoStartManager
}

// ReconfigureAutostart: the simulator holds m's lock while it runs a method.
func (m *autoStartManager) ReconfigureAutostart(req *types.ReconfigureAutostart) soap.HasFault {
	func() {
		if req.Spec.Defaults != nil {
			m.Config.Defaults = req.Spec.Defaults
		}
		for _, p := range req.Spec.PowerInfo {
			kept := m.Config.PowerInfo[:0]
			for _, e := range m.Config.PowerInfo {
				if e.Key != p.Key {
					kept = append(kept, e)
				}
			}
			m.Config.PowerInfo = kept
			if p.StartAction == "none" && p.StopAction == "none" {
				continue // "removed from the AutoStart sequence"
			}
			m.Config.PowerInfo = append(m.Config.PowerInfo, p)
		}
	}()
	return &methods.ReconfigureAutostartBody{Res: &types.ReconfigureAutostartResponse{}}
}

var autoStart = map[string]*autoStartManager{} // host moref -> its manager

// setupIdentity runs once after the model is created.
func setupIdentity() {
	for _, e := range simulator.Map.All("HostSystem") {
		h, ok := e.(*simulator.HostSystem)
		if !ok {
			continue
		}
		ref := types.ManagedObjectReference{Type: "HostAutoStartManager", Value: "autostart-" + h.Self.Value}
		m := &autoStartManager{}
		m.Self = ref
		m.Config = types.HostAutoStartManagerConfig{Defaults: &types.AutoStartDefaults{
			Enabled: types.NewBool(true), StartDelay: 120, StopDelay: 120,
			WaitForHeartbeat: types.NewBool(false), StopAction: "PowerOff"}}
		simulator.Map.Put(m)
		r := ref
		h.ConfigManager.AutoStartManager = &r
		autoStart[h.Self.Value] = m
	}
}

// ---------------------------------------------------------------------------
// Test control: POST /vmigrate-identity.

type identityRequest struct {
	Op    string `json:"op"`
	Host  string `json:"host"`
	VM    string `json:"vm"`
	Order int32  `json:"order"`
}

func identityControl(w http.ResponseWriter, r *http.Request) {
	var req identityRequest
	serveOp(w, r, &req, func() error {
		if req.Op != "autostart" {
			return fmt.Errorf("unknown op %q", req.Op)
		}
		vm := findVM(req.VM)
		if vm == nil || vm.Runtime.Host == nil {
			return fmt.Errorf("no VM %s", req.VM)
		}
		m := autoStart[vm.Runtime.Host.Value]
		if m == nil {
			return fmt.Errorf("no autostart manager for %s", vm.Runtime.Host.Value)
		}
		simulator.Map.WithLock(m, func() {
			m.ReconfigureAutostart(&types.ReconfigureAutostart{Spec: types.HostAutoStartManagerConfig{
				PowerInfo: []types.AutoStartPowerInfo{{Key: vm.Self, StartOrder: req.Order, StartDelay: -1,
					WaitForHeartbeat: "systemDefault", StartAction: "powerOn", StopDelay: -1,
					StopAction: "systemDefault"}}}})
		})
		return nil
	})
}

// ---------------------------------------------------------------------------
// RegisterVM_Task reads the .vmx's NICs; PowerOnVM_Task checks static MACs.

type identityHandler struct {
	next http.Handler
}

var (
	badStaticMu sync.Mutex
	badStatic   = map[string]string{} // VM moref -> the MAC ESXi would refuse
	taskRef     = regexp.MustCompile(`<returnval[^>]*>([^<]+)</returnval>`)
	thisVM      = regexp.MustCompile(`<_this[^>]*>([^<]+)</_this>`)
)

func (h *identityHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := sdkBody(w, r, "/vmigrate-identity", identityControl, h.next)
	if !ok {
		return
	}
	switch {
	case strings.Contains(string(body), "<PowerOnVM_Task"):
		if m := thisVM.FindSubmatch(body); m != nil {
			badStaticMu.Lock()
			mac, bad := badStatic[string(m[1])]
			badStaticMu.Unlock()
			if bad {
				writeSoap(w, http.StatusInternalServerError, &soapFault{
					Code: "ServerFaultCode",
					String: fmt.Sprintf("Invalid MAC address specified. %s is not an allowed static "+
						"Ethernet address. It conflicts with VMware reserved MACs.", mac),
					Detail: faultDetailWrap{&faultDetail{&types.InvalidArgument{InvalidProperty: "macAddress"}}},
				})
				return
			}
		}
	case strings.Contains(string(body), "<RegisterVM_Task"):
		rec := httptest.NewRecorder()
		h.next.ServeHTTP(rec, r)
		if m := taskRef.FindSubmatch(rec.Body.Bytes()); m != nil && rec.Code == http.StatusOK {
			afterRegister(types.ManagedObjectReference{Type: "Task", Value: string(m[1])})
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	h.next.ServeHTTP(w, r)
}

// afterRegister waits (briefly) for the registration task, then gives the new VM
// the NICs its .vmx names.
func afterRegister(ref types.ManagedObjectReference) {
	var vmRef *types.ManagedObjectReference
	for i := 0; i < 200 && vmRef == nil; i++ {
		task, ok := simulator.Map.Get(ref).(*simulator.Task)
		if !ok {
			return
		}
		var state types.TaskInfoState
		simulator.Map.WithLock(task, func() {
			state = task.Info.State
			if state == types.TaskInfoStateSuccess {
				if r, ok := task.Info.Result.(types.ManagedObjectReference); ok {
					vmRef = &r
				}
			}
		})
		if state == types.TaskInfoStateError || (state == types.TaskInfoStateSuccess && vmRef == nil) {
			return
		}
		if vmRef == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if vmRef == nil {
		return
	}
	vm, ok := simulator.Map.Get(*vmRef).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	file := vmxLocalPath(vm)
	entries, err := readVmx(file)
	if err != nil {
		log.Printf("register: reading %s: %v", file, err)
		return
	}
	others := otherMacs(vm.Self)
	var nics []types.BaseVirtualDevice
	for n := 0; n < 10; n++ {
		p := fmt.Sprintf("ethernet%d.", n)
		if !strings.EqualFold(entries[p+"present"], "true") {
			continue
		}
		nic, bad := vmxNic(vm.Name, n, entries, others)
		nics = append(nics, nic)
		if bad != "" {
			badStaticMu.Lock()
			badStatic[vm.Self.Value] = bad
			badStaticMu.Unlock()
		}
	}
	simulator.Map.WithLock(vm, func() {
		vm.Config.Hardware.Device = append(vm.Config.Hardware.Device, nics...)
	})
}

func vmxLocalPath(vm *simulator.VirtualMachine) string {
	var p, ds string
	simulator.Map.WithLock(vm, func() {
		p = vm.Config.Files.VmPathName
	})
	if i := strings.Index(p, "] "); strings.HasPrefix(p, "[") && i > 0 {
		ds, p = p[1:i], p[i+2:]
	}
	for _, e := range simulator.Map.All("Datastore") {
		if d, ok := e.(*simulator.Datastore); ok && d.Name == ds {
			return path.Join(d.Info.GetDatastoreInfo().Url, p)
		}
	}
	return p
}

var vmxLine = regexp.MustCompile(`^\s*([A-Za-z0-9_.:\-]+)\s*=\s*"(.*)"\s*$`)

// readVmx returns the .vmx's keys (lower case) and values.
func readVmx(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := vmxLine.FindStringSubmatch(sc.Text()); m != nil {
			out[strings.ToLower(m[1])] = m[2]
		}
	}
	return out, sc.Err()
}

// otherMacs: MAC address (lower case) -> VM name, for every other VM's NIC.
func otherMacs(self types.ManagedObjectReference) map[string]string {
	out := map[string]string{}
	eachOtherNic(self, func(owner string, card *types.VirtualEthernetCard) {
		out[strings.ToLower(card.MacAddress)] = owner
	})
	return out
}

// vmxNic builds NIC n from the .vmx; bad is a static MAC ESXi would refuse at power-on.
func vmxNic(vmName string, n int, e map[string]string, others map[string]string) (types.BaseVirtualDevice, string) {
	p := fmt.Sprintf("ethernet%d.", n)
	kind := strings.ToLower(e[p+"addresstype"])
	mac := strings.ToLower(e[p+"generatedaddress"])
	apiType := map[string]string{"static": "manual", "vpx": "assigned"}[kind]
	if apiType == "" {
		apiType = "generated"
	}
	bad := ""
	if kind == "static" {
		mac = strings.ToLower(e[p+"address"])
		if reservedStatic(mac) && !strings.EqualFold(e[p+"checkmacaddress"], "false") {
			bad = mac
		}
	} else if owner, clash := others[mac]; clash || mac == "" {
		fresh := fmt.Sprintf("00:50:56:%02x:%02x:%02x", 0x80+rand.Intn(0x40), rand.Intn(256), rand.Intn(256))
		log.Printf("register %s: ethernet%d's %s MAC %s conflicts with VM %s: regenerated as %s",
			vmName, n, kind, mac, owner, fresh)
		mac = fresh
	}
	started := !strings.EqualFold(e[p+"startconnected"], "false")
	network := e[p+"networkname"]
	card := types.VirtualEthernetCard{
		VirtualDevice: types.VirtualDevice{
			Key:        int32(4000 + n),
			DeviceInfo: &types.Description{Label: fmt.Sprintf("Network adapter %d", n+1), Summary: network},
			Backing: &types.VirtualEthernetCardNetworkBackingInfo{
				VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: network}},
			Connectable: &types.VirtualDeviceConnectInfo{StartConnected: started, Connected: started, AllowGuestControl: true},
		},
		AddressType: apiType,
		MacAddress:  mac,
	}
	if strings.EqualFold(e[p+"virtualdev"], "vmxnet3") {
		return &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: card}}, bad
	}
	return &types.VirtualE1000{VirtualEthernetCard: card}, bad
}

// reservedStatic: a MAC of a VMware OUI that is not in the static range
// 00:50:56:00-3F:xx:xx (00:0c:29 is the host-generated OUI).
func reservedStatic(mac string) bool {
	if strings.HasPrefix(mac, "00:0c:29:") {
		return true
	}
	if !strings.HasPrefix(mac, "00:50:56:") || len(mac) < 11 {
		return false
	}
	b, err := strconv.ParseUint(mac[9:11], 16, 8)
	return err == nil && b > 0x3f
}
