// Power-on questions and distributed-switch ports (issue 11 item 6): what a
// real ESXi host / vCenter does when a VM whose files were copied powers on,
// and what govmomi 0.24.2's simulator does not (see tests/peers/README.md,
// section "issue 11 item 6"):
//
//   - a VM registered with RegisterVM_Task whose .vmx has uuid.location but no
//     uuid.action stops at the "moved or copied" question (msg.uuid.altered)
//     at its first power-on: PowerOnVM_Task stays running with
//     runtime.question set until AnswerVM (the simulator has no AnswerVM);
//     choices 0 button.uuid.cancel (Cancel), 1 button.uuid.movedTheVM (I Moved
//     It), 2 button.uuid.copiedTheVM (I Copied It), default 2 (KB 1541 and the
//     vim-cmd vmsvc/message listing cited in the README). "I Copied It" gives
//     the VM a new UUID and new generated MACs; Cancel fails the power-on;
//   - POST /vmigrate-questions {"op":"question","vm":..,"id":..} makes the
//     next power-on of a VM ask a question: msg.uuid.altered, or
//     msg.hbacommon.outofspace (a question vmigrate does not understand;
//     choices 0 Retry, 1 Cancel);
//   - RegisterVM_Task gives NIC n the .vmx's ethernetN.dvs.switchId /
//     portgroupId / portId as a distributed port backing (port key included,
//     as the .vmx names it);
//   - after a power-on every NIC's connectable.connected is its startConnected,
//     except a NIC bound to a distributed port key another VM's NIC also holds:
//     it stays disconnected (a static-binding port stays its owner's: a guess,
//     see the README).
package main

import (
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	uuidAlteredText = "This virtual machine might have been moved or copied. In order to configure " +
		"certain management and networking features, VMware ESX needs to know if this virtual " +
		"machine was moved or copied. If you don't know, answer \"I Copied It\". "
	outOfSpaceText = "There is no more space for virtual disk '%s.vmdk'. You might be able to " +
		"continue this session by freeing disk space on the relevant volume, and clicking Retry. " +
		"Click Cancel to terminate this session. "
)

type pendingQuestion struct {
	info   types.VirtualMachineQuestionInfo
	answer chan string
}

var (
	questionsMu sync.Mutex
	questionSeq int
	registered  = map[string]bool{}             // VM moref -> registered, not yet powered on
	forced      = map[string]string{}           // VM name -> message id of its next question
	pending     = map[string]*pendingQuestion{} // VM moref -> the question it waits on
	qTaskRef    = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)
	qVmxLine    = regexp.MustCompile(`^\s*([A-Za-z0-9_.:\-]+)\s*=\s*"(.*)"\s*$`)
)

type questionHandler struct {
	next http.Handler
}

func (h *questionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := sdkBody(w, r, "/vmigrate-questions", questionControl, h.next)
	if !ok {
		return
	}
	s := string(body)
	switch {
	case strings.Contains(s, "<RegisterVM_Task"):
		rec := h.forward(r, body)
		if m := qTaskRef.FindStringSubmatch(rec.Body.String()); m != nil && rec.Code == http.StatusOK {
			if vm := taskVM(m[1]); vm != nil {
				questionsMu.Lock()
				registered[vm.Self.Value] = true
				questionsMu.Unlock()
				dvsFromVmx(vm)
			}
		}
		copyResponse(w, rec)
		return
	case strings.Contains(s, "<PowerOnVM_Task") || strings.Contains(s, "<AnswerVM"):
		method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
		if err != nil {
			break
		}
		vm, _ := simulator.Map.Get(method.This).(*simulator.VirtualMachine)
		if vm == nil {
			break
		}
		if rec := (&qcdaHandler{next: h.next}).checkSession(r); rec != nil {
			copyResponse(w, rec)
			return
		}
		if method.Name == "AnswerVM" {
			answerVM(w, vm, method.Body.(*types.AnswerVM))
			return
		}
		h.powerOn(w, r, body, vm)
		return
	}
	h.next.ServeHTTP(w, r)
}

func (h *questionHandler) forward(r *http.Request, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, r.URL.Path, strings.NewReader(string(body)))
	req.Header = r.Header.Clone()
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, req)
	return rec
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// taskVM waits (briefly) for a task and returns the VM it produced.
func taskVM(ref string) *simulator.VirtualMachine {
	for i := 0; i < 500; i++ {
		task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: ref}).(*simulator.Task)
		if !ok {
			return nil
		}
		var info types.TaskInfo
		simulator.Map.WithLock(task, func() { info = task.Info })
		switch info.State {
		case types.TaskInfoStateError:
			return nil
		case types.TaskInfoStateSuccess:
			if r, ok := info.Result.(types.ManagedObjectReference); ok {
				vm, _ := simulator.Map.Get(r).(*simulator.VirtualMachine)
				return vm
			}
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// taskFault waits for a task and returns its fault (nil on success).
func taskFault(ref string) types.BaseMethodFault {
	for i := 0; i < 500; i++ {
		task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: ref}).(*simulator.Task)
		if !ok {
			return &types.ManagedObjectNotFound{}
		}
		var info types.TaskInfo
		simulator.Map.WithLock(task, func() { info = task.Info })
		switch info.State {
		case types.TaskInfoStateError:
			if info.Error != nil {
				return info.Error.Fault
			}
			return &types.SystemError{Reason: "power-on failed"}
		case types.TaskInfoStateSuccess:
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &types.SystemError{Reason: "power-on task did not finish"}
}

// ---------------------------------------------------------------------------
// Questions.

func questionControl(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Op string `json:"op"`
		VM string `json:"vm"`
		ID string `json:"id"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil || req.Op != "question" || req.VM == "" {
		http.Error(w, "want {\"op\":\"question\",\"vm\":..,\"id\":..}", http.StatusBadRequest)
		return
	}
	if req.ID != "msg.uuid.altered" && req.ID != "msg.hbacommon.outofspace" {
		http.Error(w, "unknown question id "+req.ID, http.StatusBadRequest)
		return
	}
	questionsMu.Lock()
	forced[req.VM] = req.ID
	questionsMu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
}

func choice(key, label, summary string) types.BaseElementDescription {
	return &types.ElementDescription{Description: types.Description{Label: label, Summary: summary}, Key: key}
}

// question returns what vm asks at this power-on, if anything.
func question(vm *simulator.VirtualMachine) *types.VirtualMachineQuestionInfo {
	questionsMu.Lock()
	id, isForced := forced[vm.Name]
	delete(forced, vm.Name)
	wasRegistered := registered[vm.Self.Value]
	delete(registered, vm.Self.Value) // after this power-on uuid.location matches
	questionSeq++
	seq := questionSeq
	questionsMu.Unlock()
	if !isForced {
		e := vmxEntries(vm)
		if !wasRegistered || e["uuid.location"] == "" || e["uuid.action"] != "" {
			return nil
		}
		id = "msg.uuid.altered"
	}
	q := &types.VirtualMachineQuestionInfo{Id: fmt.Sprintf("_vmx%d", seq)}
	switch id {
	case "msg.uuid.altered":
		q.Text = "msg.uuid.altered:" + uuidAlteredText
		q.Message = []types.VirtualMachineMessage{{Id: id, Text: uuidAlteredText}}
		q.Choice = types.ChoiceOption{DefaultIndex: 2, ChoiceInfo: []types.BaseElementDescription{
			choice("0", "button.uuid.cancel", "Cancel"),
			choice("1", "button.uuid.movedTheVM", "I Moved It"),
			choice("2", "button.uuid.copiedTheVM", "I Copied It"),
		}}
	default:
		text := fmt.Sprintf(outOfSpaceText, vm.Name)
		q.Text = id + ":" + text
		q.Message = []types.VirtualMachineMessage{{Id: id, Text: text}}
		q.Choice = types.ChoiceOption{DefaultIndex: 0, ChoiceInfo: []types.BaseElementDescription{
			choice("0", "button.retry", "Retry"),
			choice("1", "button.cancel", "Cancel"),
		}}
	}
	return q
}

// powerOn serves PowerOnVM_Task: straight through, or a task that waits on a question.
func (h *questionHandler) powerOn(w http.ResponseWriter, r *http.Request, body []byte, vm *simulator.VirtualMachine) {
	q := question(vm)
	if q == nil {
		rec := h.forward(r, body)
		if m := qTaskRef.FindStringSubmatch(rec.Body.String()); m != nil && taskFault(m[1]) == nil {
			connectNics(vm)
		}
		copyResponse(w, rec)
		return
	}
	header := r.Header.Clone()
	urlPath := r.URL.Path
	task := simulator.CreateTask(vm, "powerOn", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		p := &pendingQuestion{info: *q, answer: make(chan string, 1)}
		questionsMu.Lock()
		pending[vm.Self.Value] = p
		questionsMu.Unlock()
		simulator.Map.WithLock(vm, func() { vm.Runtime.Question = &p.info })
		var key string
		select {
		case key = <-p.answer:
		case <-time.After(10 * time.Minute):
		}
		simulator.Map.WithLock(vm, func() { vm.Runtime.Question = nil })
		questionsMu.Lock()
		delete(pending, vm.Self.Value)
		questionsMu.Unlock()
		cancel := (q.Message[0].Id == "msg.uuid.altered" && key == "0") ||
			(q.Message[0].Id != "msg.uuid.altered" && key == "1") || key == ""
		if cancel {
			// The exact fault ESXi reports for a cancelled power-on is a guess.
			return nil, &types.GenericVmConfigFault{Reason: "The operation was canceled by the user: " + q.Text}
		}
		if q.Message[0].Id == "msg.uuid.altered" && key == "2" {
			copiedIdentity(vm)
		}
		req := httptest.NewRequest(http.MethodPost, urlPath, strings.NewReader(string(body)))
		req.Header = header
		rec := httptest.NewRecorder()
		h.next.ServeHTTP(rec, req)
		m := qTaskRef.FindStringSubmatch(rec.Body.String())
		if m == nil {
			return nil, &types.SystemError{Reason: "power-on refused: " + tail(rec.Body.Bytes(), 400)}
		}
		if fault := taskFault(m[1]); fault != nil {
			return nil, fault
		}
		connectNics(vm)
		return nil, nil
	})
	go task.Run()
	writeSoap(w, http.StatusOK, &powerOnResponse{Returnval: task.Self})
}

type powerOnResponse struct {
	XMLName   xml.Name                     `xml:"urn:vim25 PowerOnVM_TaskResponse"`
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

type answerResponse struct {
	XMLName xml.Name `xml:"urn:vim25 AnswerVMResponse"`
}

func answerVM(w http.ResponseWriter, vm *simulator.VirtualMachine, req *types.AnswerVM) {
	questionsMu.Lock()
	p := pending[vm.Self.Value]
	questionsMu.Unlock()
	bad := func(prop, msg string) {
		writeSoap(w, http.StatusInternalServerError, &soapFault{
			Code: "ServerFaultCode", String: msg,
			Detail: faultDetailWrap{&faultDetail{&types.InvalidArgument{InvalidProperty: prop}}},
		})
	}
	if p == nil || p.info.Id != req.QuestionId {
		bad("questionId", fmt.Sprintf("no pending question %q on %s", req.QuestionId, vm.Name))
		return
	}
	known := false
	for _, c := range p.info.Choice.ChoiceInfo {
		known = known || c.GetElementDescription().Key == req.AnswerChoice
	}
	if !known {
		bad("answerChoice", fmt.Sprintf("%q is not a choice of question %s", req.AnswerChoice, req.QuestionId))
		return
	}
	p.answer <- req.AnswerChoice
	writeSoap(w, http.StatusOK, &answerResponse{})
}

// copiedIdentity: "I Copied It" gives the VM a new UUID and new generated MACs (KB 1541).
func copiedIdentity(vm *simulator.VirtualMachine) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	simulator.Map.WithLock(vm, func() {
		vm.Config.Uuid = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		for _, d := range vm.Config.Hardware.Device {
			if c, ok := d.(types.BaseVirtualEthernetCard); ok {
				card := c.GetVirtualEthernetCard()
				if card.AddressType != string(types.VirtualEthernetCardMacTypeManual) {
					card.MacAddress = fmt.Sprintf("00:0c:29:%02x:%02x:%02x", b[13], b[14], b[15]+byte(card.Key))
				}
			}
		}
	})
}
