//! `lro list`: page by page, each page written as it arrives (memory: one page).
//!
//! Nothing on stdout is a result that did not happen: the JSON document is opened with the
//! first page that arrived and closed only when the listing ended well, so a listing that
//! fails prints nothing at all, or the pages it got followed by nothing that looks like an
//! end (`jq` rejects it).

use longrunning::{Error, ListOptions, OperationsClient};

use crate::exit::Exit;
use crate::output::Printer;

/// What `lro list` was asked for.
pub(crate) struct Listing<'a> {
    pub(crate) parent: &'a str,
    pub(crate) filter: &'a str,
    pub(crate) page_size: Option<u32>,
    /// Stop after this many operations or pages, whichever comes first, so that a server
    /// answering empty pages costs at most this many RPCs; the token to resume is printed
    /// then.
    pub(crate) limit: Option<u64>,
    /// Where to resume (`--page-token`, as a stopped listing printed it).
    pub(crate) page_token: &'a str,
}

/// Lists, writing each page as it arrives. A page token the server already gave ends the
/// listing with an error.
pub(crate) async fn list(
    client: &OperationsClient,
    printer: &Printer,
    listing: &Listing<'_>,
) -> Result<Exit, Error> {
    let limit = listing
        .limit
        .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
    let page_size = listing
        .page_size
        .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let options = ListOptions {
        filter: listing.filter.to_owned(),
        page_size,
        page_token: listing.page_token.to_owned(),
    };
    let mut pager = client.pager(listing.parent, options);
    let mut listed = 0usize;
    let mut fetched = 0usize;
    let mut begun = false;
    loop {
        // Ask for no more than the limit still allows, so that a page ends exactly there
        // and its token resumes right after.
        if let Some(wanted) = limit.map(|limit| limit.saturating_sub(listed))
            && (page_size == 0 || (wanted as u64) < page_size as u64)
        {
            pager.set_page_size(i32::try_from(wanted).unwrap_or(i32::MAX));
        }
        let Some(page) = pager.next_page().await else {
            break;
        };
        let page = page?;
        if !begun {
            printer.begin_list();
            begun = true;
        }
        fetched += 1;
        let room = limit.map_or(usize::MAX, |limit| limit.saturating_sub(listed));
        for operation in page.operations.iter().take(room) {
            printer.list_item(operation);
            listed += 1;
        }
        if !printer.is_open() {
            return Ok(Exit::Success);
        }
        let stopped = limit.is_some_and(|limit| listed >= limit || fetched >= limit);
        if let (true, Some(next)) = (stopped, &page.next_page_token) {
            printer.end_list(Some(next));
            return Ok(Exit::Success);
        }
    }
    if !begun {
        printer.begin_list();
    }
    printer.end_list(None);
    Ok(Exit::Success)
}
