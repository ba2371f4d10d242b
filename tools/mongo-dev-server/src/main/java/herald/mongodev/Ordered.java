package herald.mongodev;

/** An index whose entries can be walked in index order, which {@link QueryPlanner} reads. */
interface Ordered<P> {

    SortedEntries<P> entries();
}
