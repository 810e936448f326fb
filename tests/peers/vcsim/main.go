// Command vcsim runs VMware's vSphere API simulator (govmomi's simulator
// package, Debian's golang-github-vmware-govmomi-dev) as a test peer for
// vmigrate's pyvmomi adapter, with three small extensions:
//
//   - QueryChangedDiskAreas is answered from an external command (-qcda-cmd)
//     that the test controls (the simulator itself has no such method);
//   - tasks on a snapshot (RemoveSnapshot_Task, RevertToSnapshot_Task) report
//     the VM as task.info.entity, as ESXi does (the simulator reports the
//     snapshot, which pyvmomi cannot deserialize as a ManagedEntity);
//   - snapshot disks of a VM with change tracking on get a backing changeId;
//   - delta chains, ConsolidateVMDisks_Task and slow snapshot removal that
//     keeps running after the call returned (chains.go);
//   - disk modes, RDMs, datastore types, privileges per user, SSH service
//     and firewall state, a VM moved by DRS (realhost.go);
//   - power-on questions and AnswerVM, distributed ports read from a
//     registered .vmx, NICs connected at power-on (questions.go);
//   - ShutdownGuest of a guest without VMware Tools answers ToolsUnavailable
//     (tools.go);
//   - methods listed in the -restrict-file (read at every call, so a test can
//     change it live) answer RestrictedVersion with free ESXi's licence message.
//
// It prints one JSON line on stdout when ready and serves until killed.
// See tests/peers/README.md.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

var (
	qcdaCmd      string
	restrictFile string
	qcdaTimeout  = 30 * time.Second
)

func main() {
	model := flag.String("model", "esx", "simulator model: esx (HostAgent) or vpx (VirtualCenter)")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	user := flag.String("user", "", "fixed user name (empty: any non-empty credentials are accepted)")
	password := flag.String("password", "", "fixed password (with -user)")
	useTLS := flag.Bool("tls", false, "serve HTTPS with Go's built-in test certificate")
	flag.StringVar(&qcdaCmd, "qcda-cmd", "", "shell command answering QueryChangedDiskAreas (JSON on stdin and stdout)")
	flag.StringVar(&restrictFile, "restrict-file", "", "file listing method names (one a line) refused as by a free ESXi licence")
	flag.StringVar(&licenceEdition, "licence-edition", "", "the licence the host reports: free, eval-expired or none (licence.go)")
	flag.Parse()

	var m *simulator.Model
	switch *model {
	case "esx":
		m = simulator.ESX()
	case "vpx":
		m = simulator.VPX()
	default:
		log.Fatalf("unknown -model %q (esx or vpx)", *model)
	}
	if err := m.Create(); err != nil {
		log.Fatalf("model create: %v", err)
	}

	m.Service.Listen = &url.URL{Host: *listen}
	if *user != "" {
		m.Service.Listen.User = url.UserPassword(*user, *password)
	}
	if *useTLS {
		m.Service.TLS = new(tls.Config)
	}

	simulator.Map.AddHandler(&registryHook{})
	setupIdentity() // identity.go
	setupRealHost() // realhost.go
	setupLicence()  // licence.go

	s := m.Service.NewServer()
	// Wrap the handler before any client can connect: the ready line below
	// is the first thing anybody learns about this server.
	s.Config.Handler = &qcdaHandler{next: &realHostHandler{next: s.Config.Handler}}
	s.Config.Handler = &identityHandler{next: s.Config.Handler} // identity.go
	s.Config.Handler = &questionHandler{next: s.Config.Handler} // questions.go
	s.Config.Handler = &toolsHandler{next: s.Config.Handler}    // tools.go

	u := *s.URL
	u.User = nil
	host, portStr, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(portStr)
	about := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content.About
	ready, _ := json.Marshal(map[string]interface{}{
		"url":        u.String(),
		"host":       host,
		"port":       port,
		"user":       *user,
		"password":   *password,
		"model":      *model,
		"tls":        *useTLS,
		"apiType":    about.ApiType,
		"apiVersion": about.ApiVersion,
		"pid":        os.Getpid(),
	})
	fmt.Println(string(ready))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	s.Close()
	m.Remove()
}

// ---------------------------------------------------------------------------
// Registry hook: task entities and snapshot change ids.

type registryHook struct{}

func (h *registryHook) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VmigrateTestHook", Value: "vmigrate-test-hook"}
}

func (h *registryHook) PutObject(item mo.Reference) {
	switch o := item.(type) {
	case *simulator.Task:
		// Called from CreateTask before the task runs: no one else sees it yet.
		if e := o.Info.Entity; e != nil && e.Type == "VirtualMachineSnapshot" {
			if snap, ok := simulator.Map.Get(*e).(*simulator.VirtualMachineSnapshot); ok {
				ref := snap.Vm
				o.Info.Entity = &ref
				if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok {
					o.Info.EntityName = vm.Name
				}
			}
		}
	case *simulator.VirtualMachineSnapshot:
		// Called from CreateSnapshot_Task (VM lock held by that goroutine:
		// do not lock it again). o.Config is a shallow copy of the VM's config.
		giveSnapshotChangeIds(o)
	}
}

func (h *registryHook) UpdateObject(mo.Reference, []types.PropertyChange) {}
func (h *registryHook) RemoveObject(types.ManagedObjectReference)         {}

var (
	changeSeqMu sync.Mutex
	changeSeq   = map[string]int{}
)

func giveSnapshotChangeIds(snap *simulator.VirtualMachineSnapshot) {
	cfg := &snap.Config
	if cfg.ChangeTrackingEnabled == nil || !*cfg.ChangeTrackingEnabled {
		return
	}
	vmName := ""
	if vm, ok := simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine); ok {
		vmName = vm.Name
	}
	devices := make([]types.BaseVirtualDevice, len(cfg.Hardware.Device))
	copy(devices, cfg.Hardware.Device)
	for i, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		backing, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		// Copy disk and backing: the VM's own devices must not change.
		nd := *disk
		nb := *backing
		nb.ChangeId = snapshotChangeId(vmName, cfg.Uuid, snap.Self.Value, disk, nb.FileName)
		nd.Backing = &nb
		devices[i] = &nd
	}
	cfg.Hardware.Device = devices
}

// snapshotChangeId asks -qcda-cmd (op "changeId") and falls back to a
// generated "<vm uuid>/<seq>" id when there is no command or it fails.
func snapshotChangeId(vmName, vmUuid, snapshot string, disk *types.VirtualDisk, fileName string) string {
	if qcdaCmd != "" {
		out, _, err := runQcdaCmd(map[string]interface{}{
			"op":        "changeId",
			"vm":        vmName,
			"vmUuid":    vmUuid,
			"snapshot":  snapshot,
			"deviceKey": disk.Key,
			"fileName":  fileName,
			"capacity":  diskCapacity(disk),
		})
		var res struct {
			ChangeId string `json:"changeId"`
		}
		if err == nil && json.Unmarshal(out, &res) == nil && res.ChangeId != "" {
			return res.ChangeId
		}
		log.Printf("qcda-cmd changeId for %s key %d: no changeId (%v), using a generated one", vmName, disk.Key, err)
	}
	key := fmt.Sprintf("%s:%d", vmUuid, disk.Key)
	changeSeqMu.Lock()
	changeSeq[key]++
	n := changeSeq[key]
	changeSeqMu.Unlock()
	return fmt.Sprintf("%s/%d", vmUuid, n)
}

func diskCapacity(disk *types.VirtualDisk) int64 {
	if disk.CapacityInBytes > 0 {
		return disk.CapacityInBytes
	}
	return disk.CapacityInKB * 1024
}

// ---------------------------------------------------------------------------
// QueryChangedDiskAreas over HTTP.

// sdkBody is the front every wrapping handler shares: its own control endpoint
// (``control``, served by ``serve``), anything but a SOAP POST passed to ``next``,
// and the SOAP body read once and put back for the handlers after it.  ok=false:
// the request was already answered or passed on.
func sdkBody(w http.ResponseWriter, r *http.Request, control string,
	serve func(http.ResponseWriter, *http.Request), next http.Handler) ([]byte, bool) {
	if control != "" && r.Method == http.MethodPost && r.URL.Path == control {
		serve(w, r)
		return nil, false
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/sdk") {
		next.ServeHTTP(w, r)
		return nil, false
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

type qcdaHandler struct {
	next http.Handler
}

func (h *qcdaHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := sdkBody(w, r, "/vmigrate-test", serveControl, h.next)
	if !ok {
		return
	}
	if name := restrictedMethod(body); name != "" {
		if rec := h.checkSession(r); rec == nil {
			writeSoap(w, http.StatusInternalServerError, &soapFault{
				Code:   "ServerFaultCode",
				String: licenceMessage,
				Detail: faultDetailWrap{&faultDetail{&types.RestrictedVersion{}}},
			})
			return
		}
	}
	if bytes.Contains(body, []byte("Snapshot_Task")) || bytes.Contains(body, []byte("ConsolidateVMDisks_Task")) {
		if method, err := simulator.UnmarshalBody(types.TypeFunc(), body); err == nil && h.snapshotCall(w, r, method) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if bytes.Contains(body, []byte("Fetch")) {
		h.serveFetch(w, r)
		return
	}
	if !bytes.Contains(body, []byte("QueryChangedDiskAreas")) {
		h.next.ServeHTTP(w, r)
		return
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil || method.Name != "QueryChangedDiskAreas" {
		h.next.ServeHTTP(w, r)
		return
	}
	req := method.Body.(*types.QueryChangedDiskAreas)

	// Authenticate the same way the simulator does, by asking it: a cheap
	// call that needs a session, with the caller's cookies.
	if rec := h.checkSession(r); rec != nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}

	info, fault := queryChangedDiskAreas(req)
	if fault != nil {
		writeSoap(w, http.StatusInternalServerError, &soapFault{
			Code:   "ServerFaultCode",
			String: fault.msg,
			Detail: faultDetailWrap{&faultDetail{fault.fault}},
		})
		return
	}
	writeSoap(w, http.StatusOK, &qcdaResponse{Returnval: *info})
}

// What a free ESXi licence answers to API writes.
const licenceMessage = "Current license or ESXi version prohibits execution of the requested operation."

// restrictedMethod returns the SOAP method of body when -restrict-file lists it.
func restrictedMethod(body []byte) string {
	if restrictFile == "" {
		return ""
	}
	data, err := os.ReadFile(restrictFile)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		name := strings.TrimSpace(line)
		if name != "" && bytes.Contains(body, []byte("<"+name)) {
			method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
			if err == nil && method.Name == name {
				return name
			}
		}
	}
	return ""
}

// serveFetch works around a simulator panic: pyvmomi reads a property with
// the internal Fetch method, and the simulator indexes an empty MissingSet
// when the property is unset (vm.snapshot without snapshots), which drops
// the connection. ESXi answers with no returnval (None in pyvmomi).
func (h *qcdaHandler) serveFetch(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	panicked := func() (p bool) {
		defer func() {
			if v := recover(); v != nil {
				if !strings.Contains(fmt.Sprint(v), "index out of range") {
					panic(v)
				}
				log.Printf("Fetch of an unset property (simulator panic %v): answering unset", v)
				p = true
			}
		}()
		h.next.ServeHTTP(rec, r)
		return false
	}()
	if panicked {
		writeSoap(w, http.StatusOK, &struct {
			XMLName xml.Name `xml:"urn:vim25 FetchResponse"`
		}{})
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

const currentTimeBody = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
	`<CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime>` +
	`</soapenv:Body></soapenv:Envelope>`

// checkSession returns nil when the request carries a valid session,
// otherwise the simulator's own answer (a NotAuthenticated fault).
func (h *qcdaHandler) checkSession(r *http.Request) *httptest.ResponseRecorder {
	probe := httptest.NewRequest(http.MethodPost, r.URL.Path, strings.NewReader(currentTimeBody))
	probe.Header = r.Header.Clone()
	probe.Header.Del("Content-Length")
	probe.Header.Set("Content-Type", "text/xml; charset=utf-8")
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, probe)
	if rec.Code == http.StatusOK {
		return nil
	}
	return rec
}

type qcdaFault struct {
	msg   string
	fault types.BaseMethodFault
}

func queryChangedDiskAreas(req *types.QueryChangedDiskAreas) (*types.DiskChangeInfo, *qcdaFault) {
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return nil, &qcdaFault{fmt.Sprintf("managed object not found: %s", req.This),
			&types.ManagedObjectNotFound{Obj: req.This}}
	}

	var (
		vmName, vmUuid, fileName, snapshot string
		cbt                                bool
		disk                               *types.VirtualDisk
		fault                              *qcdaFault
	)
	simulator.Map.WithLock(vm, func() {
		vmName, vmUuid = vm.Name, vm.Config.Uuid
		cfg := vm.Config
		if req.Snapshot != nil {
			snap, ok := simulator.Map.Get(*req.Snapshot).(*simulator.VirtualMachineSnapshot)
			if !ok || snap.Vm != vm.Self {
				fault = &qcdaFault{fmt.Sprintf("snapshot %s not found on %s", req.Snapshot.Value, vm.Name),
					&types.ManagedObjectNotFound{Obj: *req.Snapshot}}
				return
			}
			snapshot = snap.Self.Value
			cfg = &snap.Config
		}
		cbt = cfg.ChangeTrackingEnabled != nil && *cfg.ChangeTrackingEnabled
		for _, d := range cfg.Hardware.Device {
			if vd, ok := d.(*types.VirtualDisk); ok && vd.Key == req.DeviceKey {
				c := *vd
				disk = &c
				if b, ok := vd.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
					fileName = b.GetVirtualDeviceFileBackingInfo().FileName
				}
			}
		}
	})
	if fault != nil {
		return nil, fault
	}
	if disk == nil {
		return nil, &qcdaFault{fmt.Sprintf("no virtual disk with key %d on %s", req.DeviceKey, vmName),
			&types.InvalidArgument{InvalidProperty: "deviceKey"}}
	}
	if !cbt {
		return nil, &qcdaFault{fmt.Sprintf("change tracking is not enabled on %s", vmName),
			&types.FileFault{File: fileName}}
	}
	capacity := diskCapacity(disk)
	if req.StartOffset < 0 || req.StartOffset >= capacity {
		return nil, &qcdaFault{fmt.Sprintf("startOffset %d outside disk of %d bytes", req.StartOffset, capacity),
			&types.InvalidArgument{InvalidProperty: "startOffset"}}
	}
	if qcdaCmd == "" {
		return nil, &qcdaFault{"QueryChangedDiskAreas needs vcsim -qcda-cmd",
			&types.NotSupported{}}
	}

	var snapArg interface{}
	if snapshot != "" {
		snapArg = snapshot
	}
	out, stderr, err := runQcdaCmd(map[string]interface{}{
		"op":          "query",
		"vm":          vmName,
		"vmUuid":      vmUuid,
		"vmMoref":     req.This.Value,
		"snapshot":    snapArg,
		"deviceKey":   req.DeviceKey,
		"startOffset": req.StartOffset,
		"changeId":    req.ChangeId,
		"fileName":    fileName,
		"capacity":    capacity,
	})

	var res struct {
		Fault           string `json:"fault"`
		Message         string `json:"message"`
		InvalidProperty string `json:"invalidProperty"`
		StartOffset     *int64 `json:"startOffset"`
		Length          int64  `json:"length"`
		ChangedArea     []struct {
			Start  int64 `json:"start"`
			Length int64 `json:"length"`
		} `json:"changedArea"`
	}
	jerr := json.Unmarshal(out, &res)
	if jerr == nil && res.Fault != "" {
		msg := res.Message
		if msg == "" {
			msg = res.Fault
		}
		switch res.Fault {
		case "InvalidArgument":
			prop := res.InvalidProperty
			if prop == "" {
				prop = "changeId"
			}
			return nil, &qcdaFault{msg, &types.InvalidArgument{InvalidProperty: prop}}
		case "FileFault":
			return nil, &qcdaFault{msg, &types.FileFault{File: fileName}}
		case "NotFound":
			return nil, &qcdaFault{msg, &types.NotFound{}}
		default:
			return nil, &qcdaFault{msg, &types.SystemError{Reason: res.Fault + ": " + msg}}
		}
	}
	if err != nil || jerr != nil || res.StartOffset == nil {
		reason := fmt.Sprintf("qcda-cmd failed: err=%v json=%v stderr=%s", err, jerr, tail(stderr, 2000))
		log.Print(reason)
		return nil, &qcdaFault{reason, &types.SystemError{Reason: reason}}
	}
	info := &types.DiskChangeInfo{StartOffset: *res.StartOffset, Length: res.Length}
	for _, a := range res.ChangedArea {
		info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: a.Start, Length: a.Length})
	}
	return info, nil
}

func runQcdaCmd(in map[string]interface{}) ([]byte, []byte, error) {
	payload, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(context.Background(), qcdaTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", qcdaCmd)
	cmd.Stdin = bytes.NewReader(payload)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// ---------------------------------------------------------------------------
// SOAP encoding, shaped like the simulator's own (simulator.go).

type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type qcdaResponse struct {
	XMLName   xml.Name             `xml:"urn:vim25 QueryChangedDiskAreasResponse"`
	Returnval types.DiskChangeInfo `xml:"returnval"`
}

type soapFault struct {
	XMLName xml.Name        `xml:"soapenv:Fault"`
	Code    string          `xml:"faultcode"`
	String  string          `xml:"faultstring"`
	Detail  faultDetailWrap `xml:"detail"`
}

type faultDetailWrap struct {
	Fault *faultDetail
}

type faultDetail struct {
	Fault types.AnyType
}

// MarshalXML names the element "${Type}Fault" with xsi:type, as vim does.
func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

func writeSoap(w http.ResponseWriter, status int, body interface{}) {
	var out bytes.Buffer
	out.WriteString(xml.Header)
	err := xml.NewEncoder(&out).Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err != nil {
		log.Printf("encoding QueryChangedDiskAreas response: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}
