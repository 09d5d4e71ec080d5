module csr-signer/tests/x509diff/gox509

// The go line sets GODEBUG defaults (rsa1024min, x509 parsing knobs): keep it
// at the oldest Go the supported kube-apiservers are built with.
go 1.24
