// gox509 prints Go's crypto/x509 view of PKCS#10 requests, for the
// differential test of signer.pki.parsing against what kube-apiserver,
// kubectl and every Go client see.
//
// Input: one base64 (standard alphabet) DER request per line on stdin.
// Output: one JSON object per line, flushed after each, in input order.
package main

import (
	"bufio"
	"crypto/dsa" //nolint:staticcheck // Go still parses DSA keys in requests
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type keyView struct {
	Alg   string `json:"alg"`
	Size  int    `json:"size"`
	Curve string `json:"curve,omitempty"`
	E     int    `json:"e,omitempty"`
}

type result struct {
	OK     bool     `json:"ok"`
	Error  string   `json:"error,omitempty"`
	DNS    []string `json:"dns"`
	IPs    []string `json:"ips"`
	URIs   []string `json:"uris"`
	Emails []string `json:"emails"`
	// Subject is Go's pkix Name.Names: [oid, Go type of the value, hex of
	// the value's bytes when it is a string ("" otherwise)].
	Subject    [][3]string `json:"subject"`
	CommonName string      `json:"cn"`
	Key        keyView     `json:"key"`
	SigAlg     string      `json:"sig_alg"`
	SigOK      bool        `json:"sig_ok"`
	SigError   string      `json:"sig_error,omitempty"`
	Version    int         `json:"version"`
}

func view(der []byte) result {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return result{OK: false, Error: err.Error()}
	}
	r := result{
		OK: true, DNS: csr.DNSNames, Emails: csr.EmailAddresses,
		IPs: []string{}, URIs: []string{}, Subject: [][3]string{},
		CommonName: csr.Subject.CommonName, SigAlg: csr.SignatureAlgorithm.String(),
		Version: csr.Version,
	}
	if r.DNS == nil {
		r.DNS = []string{}
	}
	if r.Emails == nil {
		r.Emails = []string{}
	}
	for _, ip := range csr.IPAddresses {
		r.IPs = append(r.IPs, ip.String())
	}
	for _, u := range csr.URIs {
		r.URIs = append(r.URIs, u.String())
	}
	for _, atv := range csr.Subject.Names {
		s, isString := atv.Value.(string)
		h := ""
		if isString {
			h = hex.EncodeToString([]byte(s))
		}
		r.Subject = append(r.Subject, [3]string{atv.Type.String(), fmt.Sprintf("%T", atv.Value), h})
	}
	switch k := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		r.Key = keyView{Alg: "RSA", Size: k.N.BitLen(), E: k.E}
	case *ecdsa.PublicKey:
		r.Key = keyView{Alg: "ECDSA", Size: k.Curve.Params().BitSize, Curve: k.Curve.Params().Name}
	case ed25519.PublicKey:
		r.Key = keyView{Alg: "Ed25519", Size: 256}
	case *dsa.PublicKey:
		r.Key = keyView{Alg: "DSA", Size: k.P.BitLen()}
	case *ecdh.PublicKey:
		r.Key = keyView{Alg: "ECDH", Size: 8 * len(k.Bytes())}
	default:
		r.Key = keyView{Alg: fmt.Sprintf("%T/%v", k, csr.PublicKeyAlgorithm)}
	}
	if err := csr.CheckSignature(); err != nil {
		r.SigError = err.Error()
	} else {
		r.SigOK = true
	}
	return r
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for {
		line, err := in.ReadString('\n')
		line = strings.TrimSpace(line)
		if line != "" {
			var r result
			if der, decErr := base64.StdEncoding.DecodeString(line); decErr != nil {
				r = result{Error: "base64: " + decErr.Error()}
			} else {
				r = view(der)
			}
			if encErr := enc.Encode(r); encErr != nil {
				fmt.Fprintln(os.Stderr, encErr)
				os.Exit(1)
			}
			if flushErr := out.Flush(); flushErr != nil {
				os.Exit(1)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
