// One RAII alias per C handle of libnftnl and libmnl; no *_free call outside this header.
#pragma once

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "zonewall/base/c_handle.h"

namespace zonewall::dataplane {

using NftnlTablePtr = CHandle<nftnl_table, nftnl_table_free>;
using NftnlChainPtr = CHandle<nftnl_chain, nftnl_chain_free>;
using NftnlSetPtr = CHandle<nftnl_set, nftnl_set_free>;
using NftnlSetElemPtr = CHandle<nftnl_set_elem, nftnl_set_elem_free>;
using NftnlRulePtr = CHandle<nftnl_rule, nftnl_rule_free>;
using NftnlExprPtr = CHandle<nftnl_expr, nftnl_expr_free>;
using NftnlExprIterPtr = CHandle<nftnl_expr_iter, nftnl_expr_iter_destroy>;
using NftnlBatchPtr = CHandle<nftnl_batch, nftnl_batch_free>;
using MnlSocketPtr = CHandle<mnl_socket, mnl_socket_close>;

}  // namespace zonewall::dataplane
